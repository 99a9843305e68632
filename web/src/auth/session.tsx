/**
 * The signed-in session. The token lives in memory and in sessionStorage (this tab only, gone
 * when it closes): the API already speaks bearer tokens, so nothing rides on cookies and there
 * is no cross-site request to forge; the cost — a script injected into the page could read it —
 * is what the hub's CSP without inline scripts stands against. See web/README.md.
 *
 * A 401 on a call that carried the token ends the session and sends the user to sign-in with
 * `next` set to the page they were on, where signing in again brings them back.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { useLocation, useNavigate } from 'react-router';
import { holdsPermission } from '@contracts/permissions';
import { api, bindSession, unwrap } from '../api/client';
import type { paths } from '../api/schema';

export type Me = paths['/api/v1/me']['get']['responses']['200']['content']['application/json']['data'];

const STORAGE_KEY = 'plexus.session';

interface Stored {
  token: string;
  /** The tenant a platform admin acts in (the `Tenant` header); undefined: its own. */
  tenant?: string;
}

export interface Session {
  me: Me | undefined;
  /** True while the stored token is being checked at start. */
  loading: boolean;
  /** Why the last session ended, shown on the sign-in page. */
  notice: string | undefined;
  /** `tenant`: the account's tenant (usernames are unique per tenant); the hub's default when empty. */
  signIn(username: string, password: string, tenant?: string): Promise<void>;
  signOut(): Promise<void>;
  /** Platform admins: act in another tenant (undefined: their own). */
  switchTenant(tenant: string | undefined): Promise<void>;
  isPlatformAdmin: boolean;
  can(permission: string): boolean;
}

const SessionContext = createContext<Session | undefined>(undefined);

function readStored(): Stored | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as Stored) : undefined;
  } catch {
    return undefined;
  }
}

function writeStored(s: Stored | undefined): void {
  if (s) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  else sessionStorage.removeItem(STORAGE_KEY);
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const stored = useRef<Stored | undefined>(readStored());
  const [me, setMe] = useState<Me | undefined>(undefined);
  const [loading, setLoading] = useState(stored.current !== undefined);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const navigate = useNavigate();
  const location = useLocation();
  const here = useRef('/');
  here.current = location.pathname + location.search;

  const end = useCallback(
    (why: string | undefined) => {
      const wasOn = here.current;
      stored.current = undefined;
      writeStored(undefined);
      setMe(undefined);
      setNotice(why);
      if (!wasOn.startsWith('/sign-in')) navigate(`/sign-in?next=${encodeURIComponent(wasOn)}`, { replace: true });
    },
    [navigate],
  );

  // Bound once: the client asks for the current token on every request.
  useEffect(() => {
    bindSession({
      token: () => stored.current?.token,
      tenant: () => stored.current?.tenant,
      expired: () => {
        if (stored.current) end('Your session has expired. Sign in again to continue where you were.');
      },
    });
  }, [end]);

  useEffect(() => {
    if (!stored.current) return;
    unwrap(api.GET('/api/v1/me'))
      .then((r) => setMe(r.data))
      .catch(() => undefined)
      .finally(() => setLoading(false));
  }, []);

  const session = useMemo<Session>(() => {
    const permissions = me?.permissions ?? [];
    const isPlatformAdmin = permissions.includes('all');
    return {
      me,
      loading,
      notice,
      isPlatformAdmin,
      can: (p) => holdsPermission(permissions, p),
      async signIn(username, password, tenant) {
        const { token } = await unwrap(api.POST('/api/v1/login', { body: { username, password, ...(tenant ? { tenant } : {}) } }));
        stored.current = { token };
        writeStored(stored.current);
        const r = await unwrap(api.GET('/api/v1/me'));
        setNotice(undefined);
        setMe(r.data);
      },
      async signOut() {
        await api.POST('/api/v1/logout').catch(() => undefined);
        end('You have signed out.');
      },
      async switchTenant(tenant) {
        if (!stored.current) return;
        stored.current = { ...stored.current, ...(tenant ? { tenant } : { tenant: undefined }) };
        writeStored(stored.current);
        const r = await unwrap(api.GET('/api/v1/me'));
        setMe(r.data);
      },
    };
  }, [me, loading, notice, end]);

  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

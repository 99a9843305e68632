/** Routes and the frame around every signed-in page: navigation, tenant switcher, sign-out. */
import { lazy, Suspense, useCallback, useEffect, useRef, useState } from 'react';
import { Navigate, NavLink, Route, Routes, useLocation } from 'react-router';
import { api, unwrap } from './api/client';
import { useSession } from './auth/session';
import { AuditPage } from './pages/Audit';
import { ComponentsPage } from './pages/Components';
import { DashboardPage } from './pages/Dashboard';
import { ExecutionPage } from './pages/Execution';
import { ExecutionsPage } from './pages/Executions';
import { FlowsPage } from './pages/Flows';
import { SignInPage } from './pages/SignIn';
import { TenantsPage } from './pages/Tenants';
import { TokensPage } from './pages/Tokens';
import { UsersPage } from './pages/Users';
import { WorkersPage } from './pages/Workers';

// The canvas and the schema forms (xyflow, rjsf + ajv, jsonata) load with the pages that use them.
const FlowEditorPage = lazy(() => import('./pages/FlowEditor').then((m) => ({ default: m.FlowEditorPage })));
// The Director's screens (spec summaries parse YAML, documents render markdown) load on first visit.
const ApplicationsPage = lazy(() => import('./pages/director/Applications').then((m) => ({ default: m.ApplicationsPage })));
const ApplicationPage = lazy(() => import('./pages/director/Application').then((m) => ({ default: m.ApplicationPage })));
const RuntimesPage = lazy(() => import('./pages/director/Runtimes').then((m) => ({ default: m.RuntimesPage })));
const RuntimePage = lazy(() => import('./pages/director/Runtimes').then((m) => ({ default: m.RuntimePage })));
const LabelDefinitionsPage = lazy(() => import('./pages/director/LabelDefinitions').then((m) => ({ default: m.LabelDefinitionsPage })));
const SecretsPage = lazy(() => import('./pages/Secrets').then((m) => ({ default: m.SecretsPage })));

const NAV = [
  { to: '/flows', label: 'Flows', permission: 'flows.read' },
  { to: '/executions', label: 'Executions', permission: 'executions.read' },
  { to: '/dashboard', label: 'Throughput', permission: 'executions.read' },
  { to: '/applications', label: 'Applications', permission: 'application:read' },
  { to: '/runtimes', label: 'Runtimes', permission: 'runtime:read' },
  { to: '/labels', label: 'Labels & scenarios', permission: 'label_definition:read' },
  { to: '/workers', label: 'Workers', permission: 'workers.read' },
  { to: '/secrets', label: 'Secrets', permission: 'secrets.read' },
  { to: '/components', label: 'Components', permission: 'components.read' },
  { to: '/users', label: 'Users & roles', permission: 'tenant.users.read' },
  { to: '/tokens', label: 'API tokens', permission: 'tenant.tokens.read' },
  { to: '/tenants', label: 'Tenants', permission: 'iam.tenants.read' },
  { to: '/audit', label: 'Audit log', permission: 'audit.read' },
];

function TenantSwitcher() {
  const session = useSession();
  const [tenants, setTenants] = useState<string[]>([]);
  const load = useCallback(() => {
    unwrap(api.GET('/api/v1/tenants', { params: { query: { 'page[size]': 100 } } })).then(
      (r) => setTenants(r.data.map((t) => t.id)),
      () => setTenants([]),
    );
  }, []);
  useEffect(load, [load]);
  const me = session.me!;
  return (
    <label className="tenant">
      Tenant
      <select
        value={me.tenant}
        // Read again when opened: a tenant created on the Tenants page is there at once.
        onFocus={load}
        onChange={(e) => void session.switchTenant(e.target.value === me.homeTenant ? undefined : e.target.value)}
      >
        {(tenants.includes(me.tenant) ? tenants : [me.tenant, ...tenants]).map((t) => (
          <option key={t} value={t}>
            {t}
          </option>
        ))}
      </select>
    </label>
  );
}

function Frame({ children }: { children: React.ReactNode }) {
  const session = useSession();
  const me = session.me!;
  const [menuOpen, setMenuOpen] = useState(false);
  const location = useLocation();
  useEffect(() => setMenuOpen(false), [location.pathname]);
  // A new page: move focus to its content, so keyboard and screen-reader users start there.
  const firstPage = useRef(true);
  useEffect(() => {
    if (firstPage.current) {
      firstPage.current = false;
      return;
    }
    document.getElementById('main')?.focus();
  }, [location.pathname]);
  return (
    <div className="frame">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Plexus Cockpit</span>
        <button type="button" className="menu-toggle" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen((o) => !o)}>
          Menu
        </button>
        <div className="who">
          {session.isPlatformAdmin ? <TenantSwitcher /> : <span>Tenant {me.tenant}</span>}
          <span aria-label="Signed in as">{me.username}</span>
          <button type="button" onClick={() => void session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <nav id="nav" aria-label="Main" className={menuOpen ? 'open' : ''}>
        <ul>
          {NAV.filter((n) => session.can(n.permission)).map((n) => (
            <li key={n.to}>
              <NavLink to={n.to}>{n.label}</NavLink>
            </li>
          ))}
        </ul>
      </nav>
      {/* Keyed by tenant: switching tenants reloads every page's data. */}
      <main id="main" tabIndex={-1} key={me.tenant}>
        <Suspense fallback={<p role="status">Loading…</p>}>{children}</Suspense>
      </main>
    </div>
  );
}

function SignedIn({ children }: { children: React.ReactNode }) {
  const session = useSession();
  const location = useLocation();
  if (session.loading) return <p role="status">Loading…</p>;
  if (!session.me) return <Navigate to={`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`} replace />;
  return <Frame>{children}</Frame>;
}

export function App() {
  return (
    <Routes>
      <Route path="/sign-in" element={<SignInPage />} />
      <Route path="/" element={<Navigate to="/flows" replace />} />
      <Route path="/flows" element={<SignedIn><FlowsPage /></SignedIn>} />
      <Route path="/flows/new" element={<SignedIn><FlowEditorPage /></SignedIn>} />
      <Route path="/flows/:id" element={<SignedIn><FlowEditorPage /></SignedIn>} />
      <Route path="/executions" element={<SignedIn><ExecutionsPage /></SignedIn>} />
      <Route path="/executions/:id" element={<SignedIn><ExecutionPage /></SignedIn>} />
      <Route path="/dashboard" element={<SignedIn><DashboardPage /></SignedIn>} />
      <Route path="/applications" element={<SignedIn><ApplicationsPage /></SignedIn>} />
      <Route path="/applications/:id" element={<SignedIn><ApplicationPage /></SignedIn>} />
      <Route path="/runtimes" element={<SignedIn><RuntimesPage /></SignedIn>} />
      <Route path="/runtimes/:id" element={<SignedIn><RuntimePage /></SignedIn>} />
      <Route path="/labels" element={<SignedIn><LabelDefinitionsPage /></SignedIn>} />
      <Route path="/workers" element={<SignedIn><WorkersPage /></SignedIn>} />
      <Route path="/secrets" element={<SignedIn><SecretsPage /></SignedIn>} />
      <Route path="/components" element={<SignedIn><ComponentsPage /></SignedIn>} />
      <Route path="/users" element={<SignedIn><UsersPage /></SignedIn>} />
      <Route path="/tokens" element={<SignedIn><TokensPage /></SignedIn>} />
      <Route path="/tenants" element={<SignedIn><TenantsPage /></SignedIn>} />
      <Route path="/audit" element={<SignedIn><AuditPage /></SignedIn>} />
      <Route path="*" element={<SignedIn><h1>Not found</h1><p>No page here.</p></SignedIn>} />
    </Routes>
  );
}

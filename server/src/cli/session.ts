/**
 * The stored session: which hub `plexus login` signed in to and the token it got, in
 * `<config dir>/session.json`, readable by the user alone (file 0600, directory 0700). The
 * token is never printed. PLEXUS_URL / PLEXUS_TOKEN take precedence, so a script or CI job can
 * act with a service account's persistent token and no stored file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { CliConfig } from '../platform/config.js';
import { CliError } from './errors.js';

export const StoredSession = z.object({
  url: z.string(),
  token: z.string(),
  username: z.string(),
  tenant: z.string(),
  expiresAt: z.string().nullable(),
});
export type StoredSession = z.infer<typeof StoredSession>;

/** Where a command's requests go and with which token, and whether that came from `plexus login`. */
export interface Target {
  url: string;
  token: string;
  fromLogin: boolean;
}

export function sessionFile(config: CliConfig): string {
  return path.join(config.configDir, 'session.json');
}

export function readSession(config: CliConfig): StoredSession | undefined {
  const file = sessionFile(config);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = StoredSession.safeParse(json);
  if (!parsed.success) throw new CliError(`${file} is not a Plexus session; remove it and run plexus login again`);
  return parsed.data;
}

/** Writes the session readable by the user alone; the file is replaced whole, never half-written. */
export function writeSession(config: CliConfig, session: StoredSession): string {
  const file = sessionFile(config);
  fs.mkdirSync(config.configDir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  // The mode applies at creation, so the token is never readable by others, not even briefly.
  fs.writeFileSync(tmp, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
  return file;
}

export function removeSession(config: CliConfig): boolean {
  try {
    fs.unlinkSync(sessionFile(config));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** The hub and token a command uses: PLEXUS_TOKEN (with PLEXUS_URL) first, then the stored session. */
export function resolveTarget(config: CliConfig): Target {
  const session = readSession(config);
  if (config.token) {
    const url = config.url ?? session?.url;
    if (!url) throw new CliError('PLEXUS_TOKEN is set but no hub URL: set PLEXUS_URL too');
    return { url, token: config.token, fromLogin: false };
  }
  if (!session) throw new CliError('not logged in: run plexus login --url <hub> (or set PLEXUS_URL and PLEXUS_TOKEN)');
  // The stored token is only ever sent to the hub that issued it.
  if (config.url && config.url !== session.url) {
    throw new CliError(`PLEXUS_URL is ${config.url} but the session is for ${session.url}: set PLEXUS_TOKEN too, or run plexus login --url ${config.url}`);
  }
  return { url: session.url, token: session.token, fromLogin: true };
}

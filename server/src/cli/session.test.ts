import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadCliConfig } from '../platform/config.js';
import { readSession, resolveTarget, writeSession, type StoredSession } from './session.js';

let home: string;
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-session-'));
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

const session: StoredSession = { url: 'http://hub.example:8080', token: 'plx_stored', username: 'admin', tenant: 'default', expiresAt: null };

describe('the stored session', () => {
  it('lives in $XDG_CONFIG_HOME/plexus, else ~/.config/plexus', () => {
    expect(loadCliConfig({ HOME: home, XDG_CONFIG_HOME: '/x/cfg' }).configDir).toBe('/x/cfg/plexus');
    expect(loadCliConfig({ HOME: home }).configDir).toBe(path.join(home, '.config', 'plexus'));
    // Relative XDG paths are invalid by the spec, so they are ignored.
    expect(loadCliConfig({ HOME: home, XDG_CONFIG_HOME: 'rel' }).configDir).toBe(path.join(home, '.config', 'plexus'));
    expect(() => loadCliConfig({ HOME: home, PLEXUS_URL: 'ftp://x' })).toThrow(/PLEXUS_URL="ftp:\/\/x" must be an http\(s\) URL/);
  });

  it('is written readable by the user alone, whatever the umask', () => {
    const config = loadCliConfig({ HOME: home });
    const previous = process.umask(0);
    try {
      const file = writeSession(config, session);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    } finally {
      process.umask(previous);
    }
    expect(readSession(config)).toEqual(session);
  });

  it('sends the stored token only to the hub that issued it', () => {
    writeSession(loadCliConfig({ HOME: home }), session);
    expect(resolveTarget(loadCliConfig({ HOME: home }))).toEqual({ url: session.url, token: 'plx_stored', fromLogin: true });
    expect(() => resolveTarget(loadCliConfig({ HOME: home, PLEXUS_URL: 'http://elsewhere:8080' }))).toThrow(/session is for http:\/\/hub.example:8080/);
    // PLEXUS_TOKEN goes where PLEXUS_URL says, or to the stored session's hub.
    expect(resolveTarget(loadCliConfig({ HOME: home, PLEXUS_URL: 'http://elsewhere:8080/', PLEXUS_TOKEN: 'plx_env' }))).toEqual({ url: 'http://elsewhere:8080', token: 'plx_env', fromLogin: false });
    expect(resolveTarget(loadCliConfig({ HOME: home, PLEXUS_TOKEN: 'plx_env' })).url).toBe(session.url);
  });

  it('says how to log in when there is none', () => {
    expect(() => resolveTarget(loadCliConfig({ HOME: home }))).toThrow(/not logged in: run plexus login --url/);
    expect(() => resolveTarget(loadCliConfig({ HOME: home, PLEXUS_TOKEN: 'plx_env' }))).toThrow(/set PLEXUS_URL too/);
  });
});

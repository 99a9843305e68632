/**
 * Installing an OIH component's own dependencies at registration, as its repository says:
 * - `package-lock.json` → `npm ci` (exactly the locked tree); without one, `npm install`
 *   (no lock file written); `yarn.lock` without a package-lock is reported in the log (Plexus
 *   installs with npm; the versions may differ from the yarn lock);
 * - production dependencies only (`--omit=dev`), unless the component needs a build
 *   (`scripts.build`, or TypeScript sources and a main that does not exist yet): then the full
 *   tree, `npm run build` once, and `npm prune --omit=dev` after;
 * - npm's strict peer resolution refuses some published components (a devDependency's peer
 *   conflict, e.g. an eslint plugin); on ERESOLVE the same command runs again with
 *   `--legacy-peer-deps`, as their authors' own installs do;
 * - dependencies' install scripts do not run (`--ignore-scripts`): nothing downloads or builds a
 *   binary on the hub, and component runners load no native addons anyway.
 * - TypeScript sources without `scripts.build` (a main naming a `.ts` file, or a missing JS main
 *   whose TypeScript source exists): transpiled with esbuild after the install
 *   (components.oih-typescript.ts).
 * Everything npm and esbuild printed is kept in `.plexus-install.log` in the component folder
 * and, on a failure, its end is in the error.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { planTypeScript, transpileTypeScript } from './components.oih-typescript.js';

export const INSTALL_LOG_FILE = '.plexus-install.log';
const INSTALL_TIMEOUT_MS = 600_000;
const LOG_TAIL_CHARS = 2_000;

export interface InstallReport {
  installed: boolean;
  built: boolean;
  /** The commands run and what they printed. */
  log: string;
}

interface PackageJson {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  scripts?: Record<string, string>;
}

function run(cmd: string, args: string[], cwd: string): Promise<{ ok: boolean; output: string; code: number | string | undefined }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: INSTALL_TIMEOUT_MS, maxBuffer: 20 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string }) | null;
      resolve({ ok: !e, output: `${stdout}${stderr}`, code: e?.code });
    });
  });
}

/** Installs (and builds) the component in `dir` when it needs it; throws AppError with the log's end when that fails. */
export async function installOihComponent(dir: string, logger: Logger): Promise<InstallReport> {
  const pkgFile = path.join(dir, 'package.json');
  const report: InstallReport = { installed: false, built: false, log: '' };
  let pkg: PackageJson = {};
  if (fs.existsSync(pkgFile)) {
    try {
      pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as PackageJson;
    } catch (err) {
      throw AppError.invalid(`package.json is not valid JSON: ${(err as Error).message}`);
    }
  }
  const hasDeps = Object.keys(pkg.dependencies ?? {}).length > 0;
  const hasBuildScript = typeof pkg.scripts?.build === 'string';
  const needsBuild = hasBuildScript && !fs.existsSync(path.join(dir, '.plexus-built'));
  const hasModules = fs.existsSync(path.join(dir, 'node_modules'));
  // The author's own build, when there is one, is what turns its TypeScript into JavaScript.
  const typeScript = hasBuildScript ? undefined : planTypeScript(dir);
  const needsInstall = needsBuild || (hasDeps && !hasModules);
  if (!needsInstall && !typeScript) return report;

  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const hasLock = fs.existsSync(path.join(dir, 'package-lock.json')) || fs.existsSync(path.join(dir, 'npm-shrinkwrap.json'));
  const lines: string[] = [];
  const note = (s: string): void => void lines.push(s);
  const fail = (what: string, code: unknown): never => {
    report.log = lines.join('\n');
    writeLog(dir, report.log);
    const tail = report.log.slice(-LOG_TAIL_CHARS);
    throw new AppError('VALIDATION_FAILED', `${what} failed${code === undefined ? '' : ` (exit ${String(code)})`}; the end of the install log (${INSTALL_LOG_FILE}):\n${tail}`, 'user', { installLog: tail });
  };
  if (needsInstall && !hasLock && fs.existsSync(path.join(dir, 'yarn.lock'))) note('# yarn.lock found and no package-lock.json: installing with npm from package.json (yarn is not used; versions may differ from yarn.lock)');

  const npmStep = async (args: string[], what: string): Promise<void> => {
    note(`$ npm ${args.join(' ')}`);
    let r = await run(npm, args, dir);
    note(r.output.trim());
    if (!r.ok && /ERESOLVE/.test(r.output) && args[0] !== 'run') {
      const retry = [...args, '--legacy-peer-deps'];
      note(`# peer dependency conflict (ERESOLVE): again with --legacy-peer-deps\n$ npm ${retry.join(' ')}`);
      r = await run(npm, retry, dir);
      note(r.output.trim());
    }
    if (!r.ok) fail(what, r.code ?? 'unknown');
  };

  const base = ['--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=warn'];
  if (needsBuild) {
    // A build needs its devDependencies (TypeScript, bundlers); they are pruned afterwards.
    await npmStep(hasLock ? ['ci', ...base] : ['install', '--no-package-lock', ...base], 'installing the component’s dependencies for its build');
    await npmStep(['run', 'build'], 'building the component (npm run build)');
    await npmStep(['prune', '--omit=dev', ...base], 'removing its devDependencies after the build');
    fs.writeFileSync(path.join(dir, '.plexus-built'), new Date().toISOString());
    report.built = true;
    report.installed = true;
  } else if (needsInstall) {
    await npmStep(hasLock ? ['ci', '--omit=dev', ...base] : ['install', '--omit=dev', '--no-package-lock', ...base], 'installing the component’s dependencies');
    report.installed = true;
  }
  if (typeScript) {
    try {
      note(await transpileTypeScript(dir, typeScript));
    } catch (err) {
      const e = err as Error & { log?: string };
      note(e.log ?? e.message);
      fail('transpiling the component’s TypeScript (esbuild)', undefined);
    }
    report.built = true;
  }
  report.log = lines.join('\n');
  writeLog(dir, report.log);
  logger.info({ dir, built: report.built, installed: report.installed }, 'installed component dependencies');
  return report;
}

function writeLog(dir: string, log: string): void {
  try {
    fs.writeFileSync(path.join(dir, INSTALL_LOG_FILE), log);
  } catch {
    // A read-only component folder: the log is still in the error and the hub log.
  }
}

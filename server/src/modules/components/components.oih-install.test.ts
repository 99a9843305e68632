/**
 * Installing an OIH component's dependencies: which npm commands run, the --legacy-peer-deps
 * fallback on ERESOLVE, and the install log. npm is replaced by a script on PATH that records its
 * arguments and answers as npm does (a peer conflict is not reproducible offline with real npm:
 * npm first fetches the conflicting peer's manifest from the registry).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { fileURLToPath } from 'node:url';
import { INSTALL_LOG_FILE, installOihComponent } from './components.oih-install.js';
import { readOihComponent } from './components.oih.js';

const TS_FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/oih-components/typescript');

const FAKE_NPM = `#!/bin/sh
echo "$*" >> "$FAKE_NPM_CALLS"
case "$*" in
  *legacy-peer-deps*) mkdir -p node_modules; echo "added 3 packages"; exit 0 ;;
esac
if [ -n "$FAKE_NPM_FAIL_BUILD" ] && [ "$1" = "run" ]; then echo "src/index.ts(3,1): error TS2304" >&2; exit 2; fi
if [ -n "$FAKE_NPM_ERESOLVE" ] && [ "$1" != "run" ]; then
  echo "npm error code ERESOLVE" >&2
  echo "npm error Could not resolve dependency: peer eslint@^8 from eslint-config-x" >&2
  exit 1
fi
mkdir -p node_modules
exit 0
`;

describe('installing an OIH component’s dependencies', () => {
  const logger = createLogger('silent');
  let bin: string;
  const made: string[] = [];
  const saved = { PATH: process.env.PATH, calls: process.env.FAKE_NPM_CALLS };

  beforeAll(() => {
    bin = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-fake-npm-'));
    fs.writeFileSync(path.join(bin, 'npm'), FAKE_NPM, { mode: 0o755 });
    process.env.PATH = `${bin}:${process.env.PATH ?? ''}`;
  });

  afterAll(() => {
    process.env.PATH = saved.PATH;
    delete process.env.FAKE_NPM_ERESOLVE;
    delete process.env.FAKE_NPM_FAIL_BUILD;
    for (const d of [bin, ...made]) fs.rmSync(d, { recursive: true, force: true });
  });

  const component = (pkg: Record<string, unknown>, files: Record<string, string> = {}): { dir: string; calls: () => string[] } => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-install-'));
    made.push(work);
    fs.writeFileSync(path.join(work, 'package.json'), JSON.stringify(pkg));
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(work, f), text);
    const callsFile = path.join(work, '.calls');
    process.env.FAKE_NPM_CALLS = callsFile;
    return { dir: work, calls: () => (fs.existsSync(callsFile) ? fs.readFileSync(callsFile, 'utf8').trim().split('\n') : []) };
  };

  it('uses npm ci with a lock file, production dependencies only, no install scripts', async () => {
    const c = component({ name: 'x', dependencies: { a: '1.0.0' } }, { 'package-lock.json': '{}' });
    const report = await installOihComponent(c.dir, logger);
    expect(report).toMatchObject({ installed: true, built: false });
    expect(c.calls()).toEqual(['ci --omit=dev --no-audit --no-fund --ignore-scripts --loglevel=warn']);
    expect(fs.readFileSync(path.join(c.dir, INSTALL_LOG_FILE), 'utf8')).toContain('$ npm ci --omit=dev');
    // Installed once: a second registration of the same folder installs nothing.
    expect(await installOihComponent(c.dir, logger)).toMatchObject({ installed: false });
  });

  it('falls back to --legacy-peer-deps when a peer conflict (ERESOLVE) breaks resolution', async () => {
    process.env.FAKE_NPM_ERESOLVE = '1';
    try {
      const c = component({ name: 'x', dependencies: { a: '1.0.0' }, devDependencies: { 'eslint-config-x': '1.0.0' } });
      const report = await installOihComponent(c.dir, logger);
      expect(report.installed).toBe(true);
      expect(c.calls()).toEqual([
        'install --omit=dev --no-package-lock --no-audit --no-fund --ignore-scripts --loglevel=warn',
        'install --omit=dev --no-package-lock --no-audit --no-fund --ignore-scripts --loglevel=warn --legacy-peer-deps',
      ]);
      expect(report.log).toMatch(/ERESOLVE[\s\S]*again with --legacy-peer-deps/);
    } finally {
      delete process.env.FAKE_NPM_ERESOLVE;
    }
  });

  it('builds a component with a build script (dev dependencies, build, prune), and reports a failed build with its log', async () => {
    const c = component({ name: 'x', scripts: { build: 'tsc' }, devDependencies: { typescript: '5.0.0' } }, { 'yarn.lock': '' });
    const report = await installOihComponent(c.dir, logger);
    expect(report).toMatchObject({ installed: true, built: true });
    expect(c.calls().map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['install --no-package-lock', 'run build', 'prune --omit=dev']);
    expect(report.log).toContain('yarn.lock found and no package-lock.json');

    process.env.FAKE_NPM_FAIL_BUILD = '1';
    try {
      const broken = component({ name: 'y', scripts: { build: 'tsc' } });
      await expect(installOihComponent(broken.dir, logger)).rejects.toThrow(/building the component \(npm run build\) failed \(exit 2\)[\s\S]*error TS2304/);
    } finally {
      delete process.env.FAKE_NPM_FAIL_BUILD;
    }
  });

  describe('TypeScript sources without a build script', () => {
    it('transpiles them once with esbuild, beside their sources, keeping the log (a main naming a .ts file)', async () => {
      const c = component({});
      fs.cpSync(TS_FIXTURE, c.dir, { recursive: true });
      const report = await installOihComponent(c.dir, logger);
      expect(report).toMatchObject({ installed: false, built: true });
      // No npm: the component has no dependencies; the hub's own esbuild does the work.
      expect(c.calls()).toEqual([]);
      for (const f of ['lib/actions/greet.js', 'lib/format.js', 'verifyCredentials.js']) expect(fs.existsSync(path.join(c.dir, f)), f).toBe(true);
      const log = fs.readFileSync(path.join(c.dir, INSTALL_LOG_FILE), 'utf8');
      expect(log).toMatch(/TypeScript sources and no scripts.build \(\.\/lib\/actions\/greet\.ts, verifyCredentials\.ts\): transpiled with esbuild \d/);
      expect(log).toContain('3 files from . to .');
      // The component runs from what was emitted.
      const def = readOihComponent(c.dir);
      expect(def.mains.greet!.file).toBe(path.join(c.dir, 'lib/actions/greet.js'));
      expect(def.verifier).toBe(path.join(c.dir, 'verifyCredentials.js'));
      const mod = (await import(path.join(c.dir, 'lib/format.js'))) as { greeting(s: string, n: string): unknown };
      expect(mod.greeting('Hi', 'Ann')).toEqual({ text: 'Hi, Ann!', tone: 'plain', compiledFrom: 'js' });
    });

    it('emits into tsconfig’s outDir when a main there is missing and its source under rootDir exists', async () => {
      const c = component({ name: 'z', type: 'module' });
      fs.mkdirSync(path.join(c.dir, 'src', 'actions'), { recursive: true });
      fs.writeFileSync(path.join(c.dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { outDir: 'dist', rootDir: 'src' } }));
      fs.writeFileSync(path.join(c.dir, 'component.json'), JSON.stringify({ actions: { up: { main: './dist/actions/up.js' } } }));
      fs.writeFileSync(path.join(c.dir, 'src', 'actions', 'up.ts'), "import { twice } from '../twice.js';\nexport async function process(msg: { data: { n: number } }) { return { data: { n: twice(msg.data.n) } }; }\n");
      fs.writeFileSync(path.join(c.dir, 'src', 'twice.ts'), 'export const twice = (n: number): number => n * 2;\n');
      expect(readOihComponent(c.dir, { requireMains: false }).mains.up!.file).toBe(path.join(c.dir, 'dist/actions/up.js'));
      await installOihComponent(c.dir, logger);
      // An ES module, as package.json says.
      expect(fs.readFileSync(path.join(c.dir, 'dist', 'actions', 'up.js'), 'utf8')).toMatch(/^import \{ twice \} from "\.\.\/twice\.js";[\s\S]*export \{\s*process\s*\}/);
      expect(fs.existsSync(path.join(c.dir, 'dist', 'twice.js'))).toBe(true);
      expect(fs.existsSync(path.join(c.dir, 'src', 'twice.js'))).toBe(false);
    });

    it('leaves a component with its own build script, and plain JavaScript, alone', async () => {
      const plain = component({ name: 'p' });
      fs.mkdirSync(path.join(plain.dir, 'lib'));
      fs.writeFileSync(path.join(plain.dir, 'component.json'), JSON.stringify({ actions: { a: { main: './lib/a.js' } } }));
      fs.writeFileSync(path.join(plain.dir, 'lib', 'a.js'), 'exports.process = async () => ({});');
      fs.writeFileSync(path.join(plain.dir, 'lib', 'stray.ts'), 'export const x: number = 1;');
      expect(await installOihComponent(plain.dir, logger)).toMatchObject({ installed: false, built: false });
      expect(fs.existsSync(path.join(plain.dir, 'lib', 'stray.js'))).toBe(false);
    });

    it('refuses a source esbuild cannot read, naming file and line in the error and the log', async () => {
      const c = component({});
      fs.cpSync(TS_FIXTURE, c.dir, { recursive: true });
      fs.writeFileSync(path.join(c.dir, 'lib', 'format.ts'), 'export function broken( {\n');
      await expect(installOihComponent(c.dir, logger)).rejects.toThrow(/transpiling the component’s TypeScript \(esbuild\) failed; the end of the install log[\s\S]*lib\/format\.ts:\d+:\d+/);
      expect(fs.readFileSync(path.join(c.dir, INSTALL_LOG_FILE), 'utf8')).toMatch(/ERROR\] Expected identifier[\s\S]*lib\/format\.ts:2:0/);
    });
  });
});

/**
 * OIH components written in TypeScript that have no `scripts.build`: their sources are
 * transpiled once at registration with esbuild (a production dependency of the hub: nothing is
 * downloaded), file by file, as `tsc` would emit them — so `__dirname`, relative imports and
 * the component's own node_modules work as after the author's build. Transpiled only, not
 * type-checked (as `ts-node --transpile-only`): type errors are the author's build's concern.
 *
 * Which components (decided from component.json, never guessed from a stray file):
 * - a trigger's or action's `main` (or `credentials.verifier`, or the root `verifyCredentials`)
 *   names a `.ts` / `.mts` / `.cts` file → every TypeScript file of the component is emitted
 *   beside its source (`x.ts` → `x.js`, `.mts` → `.mjs`, `.cts` → `.cjs`);
 * - a `main` names a JavaScript file that does not exist while the TypeScript file of the same
 *   name does (`lib/x.js`, `lib/x.ts`) → the same;
 * - a `main` under tsconfig.json's `outDir` that does not exist, while its source under
 *   `rootDir` (default `src`) does → every TypeScript file under rootDir is emitted into outDir.
 * `.ts` files are emitted as CommonJS, or as ES modules when package.json says `"type": "module"`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { build, formatMessages, version as esbuildVersion, type BuildFailure, type Message } from 'esbuild';

const TS_EXT = /\.(c|m)?ts$/;
const MAX_FILES = 5_000;

export interface TypeScriptPlan {
  /** Where the sources are, and where their output goes (the same folder: emitted beside them). */
  rootDir: string;
  outDir: string;
  /** The mains that made this a TypeScript component (for the log). */
  because: string[];
}

interface ComponentJsonMains {
  triggers?: Record<string, { main?: unknown }>;
  actions?: Record<string, { main?: unknown }>;
  credentials?: { verifier?: unknown };
}

function isTs(file: string): boolean {
  return TS_EXT.test(file) && !file.endsWith('.d.ts') && !/\.d\.(c|m)ts$/.test(file);
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The JavaScript file a TypeScript file is emitted as. */
export function emittedName(file: string): string {
  return file.replace(/\.ts$/, '.js').replace(/\.mts$/, '.mjs').replace(/\.cts$/, '.cjs');
}

/** tsconfig.json's outDir and rootDir, when it is plain JSON and names an outDir. */
function tsconfigDirs(dir: string): { outDir: string; rootDir: string } | undefined {
  const file = path.join(dir, 'tsconfig.json');
  if (!isFile(file)) return undefined;
  try {
    const options = (JSON.parse(fs.readFileSync(file, 'utf8')) as { compilerOptions?: { outDir?: unknown; rootDir?: unknown } }).compilerOptions ?? {};
    if (typeof options.outDir !== 'string') return undefined;
    return { outDir: path.resolve(dir, options.outDir), rootDir: path.resolve(dir, typeof options.rootDir === 'string' ? options.rootDir : 'src') };
  } catch {
    // tsconfig.json with comments: the outDir rule does not apply; the other two still do.
    return undefined;
  }
}

/** What needs transpiling in the component at `dir`, or undefined when nothing does. */
export function planTypeScript(dir: string): TypeScriptPlan | undefined {
  let json: ComponentJsonMains;
  try {
    json = JSON.parse(fs.readFileSync(path.join(dir, 'component.json'), 'utf8')) as ComponentJsonMains;
  } catch {
    return undefined;
  }
  const mains = [...Object.values(json.triggers ?? {}), ...Object.values(json.actions ?? {})].map((f) => f?.main).filter((m): m is string => typeof m === 'string');
  if (typeof json.credentials?.verifier === 'string') mains.push(json.credentials.verifier);
  if (isFile(path.join(dir, 'verifyCredentials.ts')) && !isFile(path.join(dir, 'verifyCredentials.js'))) mains.push('verifyCredentials.ts');
  const beside: string[] = [];
  const compiled: string[] = [];
  const tsconfig = tsconfigDirs(dir);
  for (const main of mains) {
    const file = path.resolve(dir, main);
    if (file !== dir && !file.startsWith(dir + path.sep)) continue;
    if (isTs(file)) {
      if (isFile(file)) beside.push(main);
      continue;
    }
    const js = /\.(c|m)?js$/.test(file) ? file : `${file}.js`;
    if (isFile(js) || isFile(path.join(file, 'index.js'))) continue;
    const ts = js.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts').replace(/\.cjs$/, '.cts');
    if (isFile(ts)) beside.push(main);
    else if (tsconfig && js.startsWith(tsconfig.outDir + path.sep) && isFile(path.join(tsconfig.rootDir, path.relative(tsconfig.outDir, ts)))) compiled.push(main);
  }
  if (compiled.length > 0 && tsconfig) return { rootDir: tsconfig.rootDir, outDir: tsconfig.outDir, because: [...compiled, ...beside] };
  if (beside.length > 0) return { rootDir: dir, outDir: dir, because: beside };
  return undefined;
}

/** The TypeScript files under `root`, leaving out node_modules, dot-folders and declaration files. */
function sources(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile() && isTs(p)) {
        out.push(p);
        if (out.length > MAX_FILES) throw new Error(`more than ${MAX_FILES} TypeScript files under ${root}`);
      }
    }
  };
  walk(root);
  return out.sort();
}

/**
 * Transpiles the component's TypeScript as planned; returns what to write to the install log.
 * Throws an Error carrying the log text (`log`) when esbuild refuses a file.
 */
export async function transpileTypeScript(dir: string, plan: TypeScriptPlan): Promise<string> {
  const files = sources(plan.rootDir);
  let isModule = false;
  try {
    isModule = (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { type?: unknown }).type === 'module';
  } catch {
    // No package.json: CommonJS, as Node.js reads it.
  }
  const tsconfig = isFile(path.join(dir, 'tsconfig.json')) ? path.join(dir, 'tsconfig.json') : undefined;
  const lines = [
    `# TypeScript sources and no scripts.build (${plan.because.join(', ')}): transpiled with esbuild ${esbuildVersion}, not type-checked`,
    `# ${files.length} files from ${path.relative(dir, plan.rootDir) || '.'} to ${path.relative(dir, plan.outDir) || '.'} (beside their sources when the same)`,
  ];
  const groups: Array<{ files: string[]; format: 'cjs' | 'esm'; ext: string }> = [
    { files: files.filter((f) => f.endsWith('.ts') && !f.endsWith('.mts') && !f.endsWith('.cts')), format: isModule ? 'esm' : 'cjs', ext: '.js' },
    { files: files.filter((f) => f.endsWith('.mts')), format: 'esm', ext: '.mjs' },
    { files: files.filter((f) => f.endsWith('.cts')), format: 'cjs', ext: '.cjs' },
  ];
  for (const g of groups) {
    if (g.files.length === 0) continue;
    try {
      const result = await build({
        entryPoints: g.files,
        outdir: plan.outDir,
        outbase: plan.rootDir,
        outExtension: { '.js': g.ext },
        absWorkingDir: dir,
        bundle: false,
        platform: 'node',
        target: 'node20',
        format: g.format,
        sourcemap: false,
        logLevel: 'silent',
        ...(tsconfig ? { tsconfig } : {}),
      });
      lines.push(...(await describe(result.warnings, 'warning')));
    } catch (err) {
      const failure = err as Partial<BuildFailure>;
      lines.push(...(await describe(failure.errors ?? [], 'error')));
      if (!failure.errors?.length) lines.push((err as Error).message);
      throw Object.assign(new Error('transpiling the component’s TypeScript failed'), { log: lines.join('\n') });
    }
  }
  return lines.join('\n');
}

async function describe(messages: Message[], kind: 'error' | 'warning'): Promise<string[]> {
  if (messages.length === 0) return [];
  return (await formatMessages(messages, { kind, color: false })).map((m) => m.trimEnd());
}

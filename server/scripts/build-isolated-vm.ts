// Runs after `npm ci` (root postinstall): builds isolated-vm's native addon, which the code-step
// sandbox needs. isolated-vm's own install script is denied in the root package.json
// (`allowScripts`): it first tries to download a prebuilt binary (unreachable from many hubs,
// and a binary nobody here reviewed), then runs node-gyp without telling it where Node's headers
// are, so node-gyp tries to download those too. Here we build from source with npm's bundled
// node-gyp against the headers of the Node that runs us, and say clearly what to do when we can't.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const serverDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function fail(message: string): never {
  process.stderr.write(`plexus: cannot build isolated-vm (needed by code steps): ${message}\n`);
  process.exit(1);
}

/** The addon loads when its file exists and matches this Node's ABI; requiring it checks both. */
function addonLoads(packageDir: string): boolean {
  if (!fs.existsSync(path.join(packageDir, 'out', 'isolated_vm.node'))) return false;
  try {
    createRequire(import.meta.url)(packageDir);
    return true;
  } catch {
    return false;
  }
}

/** Node's headers: the configured nodedir, else those installed beside this Node binary. */
function findNodeDir(): { dir: string; from: string } | undefined {
  const configured = process.env.npm_config_nodedir;
  if (configured) return { dir: configured, from: 'npm_config_nodedir' };
  const prefix = path.dirname(path.dirname(process.execPath));
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node.h')) ? { dir: prefix, from: `found beside ${process.execPath}` } : undefined;
}

function runNodeGyp(nodeGyp: string, packageDir: string, args: string[]): void {
  const result = spawnSync(process.execPath, [nodeGyp, ...args], { cwd: packageDir, stdio: 'inherit' });
  if (result.error) fail(`node-gyp ${args[0]} could not start: ${result.error.message}`);
  if (result.status !== 0) fail(`node-gyp ${args[0]} exited with ${result.status ?? result.signal}; see its output above`);
}

const packageDir = path.dirname(createRequire(path.join(serverDir, 'package.json')).resolve('isolated-vm/package.json'));
if (addonLoads(packageDir)) process.exit(0);

const nodeGyp = process.env.npm_config_node_gyp;
if (!nodeGyp || !fs.existsSync(nodeGyp)) fail('npm_config_node_gyp is not set; run this through npm (`npm ci` or `npm rebuild`), which provides its bundled node-gyp');
const nodeDir = findNodeDir();
if (!nodeDir) {
  fail(
    `no Node.js headers found (looked for ${path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node', 'node.h')}). ` +
      'Install them (Debian: libnode-dev; NodeSource packages and Node.js tarballs ship them) and set npm_config_nodedir=<folder holding include/node> before `npm ci`',
  );
}

process.stderr.write(`plexus: building isolated-vm against the Node.js headers in ${nodeDir.dir} (${nodeDir.from}); about a minute\n`);
const started = Date.now();
runNodeGyp(nodeGyp, packageDir, ['rebuild', '--release', '-j', 'max', `--nodedir=${nodeDir.dir}`]);
// The intermediate objects are large and never used again; `out/` keeps the addon.
runNodeGyp(nodeGyp, packageDir, ['clean']);
if (!addonLoads(packageDir)) fail('the build finished but the addon does not load in this Node.js');
process.stderr.write(`plexus: isolated-vm built in ${Math.round((Date.now() - started) / 1000)} s\n`);

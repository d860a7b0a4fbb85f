// Builds app.js into a `wasi:http/proxy@0.2.10` component with componentize-js.
//
//   node build.mjs OUT.wasm
//
// Environment:
//   APP_VERSION        replaces the `const VERSION = "1";` line of app.js (default: keep it)
//   GUEST_NODE_MODULES the node_modules holding the pinned packages of package.json
//                      (default: ./node_modules beside this file); build-dynamic.sh
//                      installs them with `npm ci` into a cache directory and sets this.
//   GUEST_WIT_DIR      the WIT folder (default: ../wit-http beside this file)
//
// AOT (weval) stays off: it would download a tool at run time.
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function die(msg) {
  console.error(`build.mjs: ${msg}`);
  process.exit(1);
}

const out = process.argv[2];
if (!out) die('usage: node build.mjs OUT.wasm');

const nodeModules = resolve(process.env.GUEST_NODE_MODULES || join(here, 'node_modules'));
const witDir = resolve(process.env.GUEST_WIT_DIR || join(here, '..', 'wit-http'));
const worldName = 'http-hello';

// Import componentize-js from the given node_modules, through its package's
// `exports.import` entry (ESM bare specifiers ignore NODE_PATH).
const pkgDir = join(nodeModules, '@bytecodealliance', 'componentize-js');
if (!existsSync(join(pkgDir, 'package.json'))) {
  die(`@bytecodealliance/componentize-js is not installed in ${nodeModules} (run npm ci there)`);
}
const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
const entry = typeof pkg.exports === 'string' ? pkg.exports : pkg.exports?.import ?? pkg.exports?.['.']?.import;
if (!entry) die(`cannot find the ESM entry of componentize-js ${pkg.version}`);
const { componentize } = await import(pathToFileURL(join(pkgDir, entry)).href);

// The source, with the version substituted.
let source = await readFile(join(here, 'app.js'), 'utf8');
const versionLine = /^const VERSION = "[^"\n]*";$/m;
if (!versionLine.test(source)) die('app.js has no `const VERSION = "...";` line');
const version = process.env.APP_VERSION;
if (version !== undefined && version !== '') {
  source = source.replace(versionLine, `const VERSION = ${JSON.stringify(version)};`);
}

const stage = await mkdtemp(join(tmpdir(), 'wasmhost-js-'));
try {
  const sourcePath = join(stage, 'app.js');
  await writeFile(sourcePath, source);
  const started = Date.now();
  const { component } = await componentize({
    sourcePath,
    witPath: witDir,
    worldName,
    enableAot: false,
  });
  const outPath = resolve(out);
  const tmpOut = `${outPath}.tmp-${process.pid}`;
  await writeFile(tmpOut, component);
  await rename(tmpOut, outPath);
  console.error(
    `build.mjs: wrote ${outPath} (${component.length} bytes, componentize-js ${pkg.version}, ` +
      `version ${JSON.stringify(version || 'as in app.js')}, ${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
} finally {
  await rm(stage, { recursive: true, force: true });
}

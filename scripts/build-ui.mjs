#!/usr/bin/env node
// Builds the dashboard into dist/ui/ from scratch (no stale file survives a rename): compiles
// src/ui/ with its own tsconfig (browser code: DOM types, ES modules), copies src/ui/static/ (the page, the style sheet), vendors the browser
// libraries from node_modules (preact, its hooks, htm, uPlot, with their licences), points
// the compiled modules' bare imports ('preact', 'uplot', ...) at those copies (no import map,
// so the page's Content-Security-Policy allows no inline script), and writes
// dist/ui/manifest.json: the files the server may serve (src/api/dashboard-assets.ts).
// No bundler: the browser loads the ES modules as they are.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'ui');
const modules = join(root, 'node_modules');

/** Bare specifier → [vendored file, source in node_modules, licence]. */
const VENDOR = {
  preact: ['preact.js', 'preact/dist/preact.module.js', 'preact/LICENSE'],
  'preact/hooks': ['preact-hooks.js', 'preact/hooks/dist/hooks.module.js', 'preact/LICENSE'],
  htm: ['htm.js', 'htm/dist/htm.module.js', 'htm/LICENSE'],
  uplot: ['uplot.js', 'uplot/dist/uPlot.esm.js', 'uplot/LICENSE'],
};

rmSync(out, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [join(modules, 'typescript', 'bin', 'tsc'), '-p', join(root, 'src', 'ui', 'tsconfig.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
mkdirSync(join(out, 'vendor'), { recursive: true });
for (const name of readdirSync(join(root, 'src', 'ui', 'static'))) copyFileSync(join(root, 'src', 'ui', 'static', name), join(out, name));
for (const [file, source, licence] of Object.values(VENDOR)) {
  // The source-map comment would make a browser with developer tools open ask for a map we do not ship.
  writeFileSync(join(out, 'vendor', file), readFileSync(join(modules, source), 'utf8').replace(/\n?\/\/# sourceMappingURL=.*$/m, ''));
  copyFileSync(join(modules, licence), join(out, 'vendor', `${file.replace(/\.js$/, '')}.LICENSE.txt`));
}
copyFileSync(join(modules, 'uplot', 'dist', 'uPlot.min.css'), join(out, 'vendor', 'uplot.css'));

function files(dir) {
  return readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]));
}

// Bare imports → the vendored copies; any other bare import is a build error (the browser could not load it).
// Only the modules that import anything are rewritten: our compiled code and preact's hooks
// (the libraries themselves import nothing, and uPlot's comments would only confuse the pattern).
const IMPORT = /(\bfrom\s*|\bimport\s*)(["'])([a-z@][\w@/.-]*)\2/g;
const importers = [...files(join(out, 'app')), join(out, 'figures.js'), join(out, 'vendor', 'preact-hooks.js')];
for (const path of importers.filter((path) => path.endsWith('.js'))) {
  const text = readFileSync(path, 'utf8');
  const rewritten = text.replace(IMPORT, (_match, keyword, quote, specifier) => {
    const vendored = VENDOR[specifier];
    if (vendored === undefined) throw new Error(`${relative(root, path)} imports ${specifier}, which the dashboard does not vendor (scripts/build-ui.mjs)`);
    return `${keyword}${quote}/ui/vendor/${vendored[0]}${quote}`;
  });
  if (rewritten !== text) writeFileSync(path, rewritten);
}

const manifest = files(out).map((path) => relative(out, path).split('\\').join('/')).filter((name) => name !== 'manifest.json').sort();
writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
console.log(`dashboard: ${manifest.length} files in ${relative(root, out)}/`);

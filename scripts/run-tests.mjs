#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with Node's built-in test
// runner. Node 20's `node --test` takes no globs, so we list the files here.
// Extra arguments are passed through, e.g. `npm test -- --test-name-pattern=lsm`.
// Filter by path with TEST_FILTER=substring.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const filter = process.env.TEST_FILTER;
// Only compiled tests whose TypeScript source still exists: tsc never deletes the
// output of a file that was moved or removed, and a stale copy must not run.
const hasSource = (file) => existsSync(file.replace(/^dist[\\/]/, '').replace(/\.js$/, '.ts'));
const files = findTests('dist').filter((file) => hasSource(file) && (!filter || file.includes(filter)));
if (files.length === 0) {
  console.error('no test files found under dist/ (did the TypeScript build run?)');
  process.exit(1);
}
// Which Node runs the suite: `npm test` puts node_modules/.bin first on PATH, so it is the
// Node 24 of the `node` devDependency; `node scripts/run-tests.mjs` runs on whatever `node` is.
console.log(`impulse tests on Node ${process.version} (${process.execPath}), ${files.length} test files`);
// The spec reporter prints each test; the second reporter lists the slowest files at the end.
const reporters = [
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  '--test-reporter=./scripts/slowest-files-reporter.mjs', '--test-reporter-destination=stdout',
];
const result = spawnSync(process.execPath, ['--test', ...reporters, ...process.argv.slice(2), ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);

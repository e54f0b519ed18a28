#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with Node's built-in test
// runner. Node 20's `node --test` takes no globs, so we list the files here.
// Extra arguments are passed through, e.g. `npm test -- --test-name-pattern=lsm`.
// Filter by path with TEST_FILTER=substring.
//
// Two lanes run side by side (on 2 cores `node --test` alone runs one file at a time in all,
// and the suite leaves a core idle most of the time: its real-process tests mostly wait):
//   processes — files that start real `impulse` processes, chaos runs, a browser
//               (see PROCESS_MARKERS): timing-sensitive, so one file at a time;
//   in-process — everything else: unit, property, simulator and in-process cluster tests,
//               one file at a time on 2 cores, one per core beyond the second on larger machines.
// TEST_LANES=1 runs everything in one lane as `node --test` would (to compare, or to debug a
// test that only fails beside another). Each lane's output lines carry its name; at the end
// the slowest files and each lane's wall time are listed.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const sourceOf = (file) => file.replace(/^dist[\\/]/, '').replace(/\.js$/, '.ts');
const filter = process.env.TEST_FILTER;
// Only compiled tests whose TypeScript source still exists: tsc never deletes the
// output of a file that was moved or removed, and a stale copy must not run.
const files = findTests('dist').filter((file) => existsSync(sourceOf(file)) && (!filter || file.includes(filter)));
if (files.length === 0) {
  console.error('no test files found under dist/ (did the TypeScript build run?)');
  process.exit(1);
}

// A test file belongs to the processes lane when its source imports one of these: the
// helpers that spawn `impulse` (testkit/process), the chaos runner, or the browser driver.
const PROCESS_MARKERS = /process\/(server-process|cluster-process|cli-run|netns)\.js'|from '\.\/(netns|runner)\.js'|playwright-core/;
const singleLane = process.env.TEST_LANES === '1';
const startsProcesses = new Set(singleLane ? [] : files.filter((file) => PROCESS_MARKERS.test(readFileSync(sourceOf(file), 'utf8'))));
const lanes = singleLane
  ? [{ name: 'all', files, concurrency: [] }]
  : [
      { name: 'processes', files: files.filter((file) => startsProcesses.has(file)), concurrency: ['--test-concurrency=1'] },
      { name: 'in-process', files: files.filter((file) => !startsProcesses.has(file)), concurrency: [`--test-concurrency=${Math.max(1, availableParallelism() - 2)}`] },
    ].filter((lane) => lane.files.length > 0);

// Which Node runs the suite: `npm test` puts node_modules/.bin first on PATH, so it is the
// Node 24 of the `node` devDependency; `node scripts/run-tests.mjs` runs on whatever `node` is.
console.log(`impulse tests on Node ${process.version} (${process.execPath}), ${files.length} test files in ${lanes.map((lane) => `${lane.name} (${lane.files.length})`).join(' and ')}`);

const loadNow = () => loadavg().map((load) => load.toFixed(2)).join(' ');
const loadAtStart = loadNow();
const timesDir = mkdtempSync(join(tmpdir(), 'impulse-test-times-'));
const started = performance.now();

/** Runs one lane's files, one at a time, prefixing its output lines; resolves with its exit status and wall time. */
function runLane(lane) {
  const reporters = [
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=./scripts/file-times-reporter.mjs', `--test-reporter-destination=${join(timesDir, `${lane.name}.json`)}`,
  ];
  const args = ['--test', ...lane.concurrency, ...reporters, ...process.argv.slice(2), ...lane.files];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  const prefix = lanes.length > 1 ? `[${lane.name}] ` : '';
  for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
    createInterface({ input: stream }).on('line', (line) => out.write(`${prefix}${line}\n`));
  }
  return new Promise((resolve) => {
    child.once('close', (code, signal) => resolve({ lane, status: code ?? 1, signal, wallS: (performance.now() - started) / 1000 }));
  });
}

// A runner stopped by a signal stops its lanes first (Ctrl-C reaches them anyway, through the
// terminal's process group; a CI job's SIGTERM reaches only the runner).
const running = new Set();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    for (const child of running) child.kill(signal);
    process.exitCode = 1;
  });
}
const results = await Promise.all(lanes.map(runLane));

const fileMs = [];
for (const { lane } of results) {
  const path = join(timesDir, `${lane.name}.json`);
  if (!existsSync(path) || statSync(path).size === 0) continue;
  for (const [file, ms] of JSON.parse(readFileSync(path, 'utf8'))) fileMs.push([file, ms, lane.name]);
}
rmSync(timesDir, { recursive: true, force: true });
fileMs.sort((a, b) => b[1] - a[1]);
const listed = Number(process.env.SLOWEST_FILES ?? 20);
console.log(`\nslowest ${Math.min(listed, fileMs.length)} of ${fileMs.length} test files:`);
for (const [file, ms, laneName] of fileMs.slice(0, listed)) console.log(`${(ms / 1000).toFixed(1).padStart(8)} s  ${file}${lanes.length > 1 ? `  (${laneName})` : ''}`);
for (const { lane, status, signal, wallS } of results) {
  const sumS = fileMs.filter((entry) => entry[2] === lane.name).reduce((sum, entry) => sum + entry[1], 0) / 1000;
  console.log(`lane ${lane.name}: ${lane.files.length} files, ${sumS.toFixed(1)} s of file time, done after ${wallS.toFixed(1)} s, ${status === 0 ? 'passed' : `FAILED (${signal ?? `status ${status}`})`}`);
}
console.log(`suite: ${((performance.now() - started) / 1000).toFixed(1)} s wall; load average ${loadAtStart} at the start, ${loadNow()} at the end`);
process.exit(results.every((result) => result.status === 0) ? 0 : 1);

/**
 * The seed's concurrent benchmark: `wrk` with 100 connections for 10 s on PUT,
 * GET and DELETE of one key, against each impulse engine and, in the same
 * run, the ceiling (a bare node:http server holding a Map) and the same Map
 * behind fastify (to choose the HTTP layer by measurement).
 *
 *   node dist/bench/concurrent.js [--duration 10] [--connections 100] [--rounds 3]
 *        [--engines memory,leveldb,lsm,btree] [--sync fsync,none] [--ops PUT,GET,DELETE]
 *
 * Every server runs on the Node that runs this script (run it with Node 20 and
 * with Node 24 to compare). Installs wrk from Debian's packages when missing.
 * Prints a table and writes it to docs/benchmarks.md (section
 * "concurrent-node<major>").
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENGINE_NAMES } from '../src/storage/registry.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { startCeiling } from './lib/ceiling.js';
import { flag, formatNumber, loadLine, machineLine, processCpuSeconds, table, writeSection } from './report.js';

interface WrkResult {
  requestsPerSecond: number;
  latencyAvgMs: number;
  latencyP99Ms: number;
  errors: number;
  requests: number;
  /** Server CPU time (user + system) per request, µs; NaN where /proc is missing. */
  cpuMicrosPerRequest: number;
}

interface Target {
  readonly label: string;
  start(): Promise<{ url: string; pid: number; stop: () => Promise<void> }>;
}

const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const engines = flag('engines', ENGINE_NAMES.join(',')).split(',');
const syncModes = flag('sync', 'fsync,none').split(',');
const rounds = Number(flag('rounds', '3'));
const operations = flag('ops', 'PUT,GET,DELETE').split(',') as Array<'PUT' | 'GET' | 'DELETE'>;
/** Seconds of wrk per server and operation before the measured rounds, discarded: the JIT's tier-up of a larger program takes longer than the ceiling's. */
const warmupSeconds = Number(flag('warmup', '3'));

function ensureWrk(): void {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT') return; // wrk --version exits 1 but exists
    console.log('wrk is missing: installing it from Debian packages');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'wrk'], { stdio: 'inherit' });
  }
}

async function wrk(url: string, pid: number, method: 'PUT' | 'GET' | 'DELETE', seconds = durationSeconds): Promise<WrkResult> {
  const script = join(tmpdir(), `impulse-wrk-${method}.lua`);
  await writeFile(script, `wrk.method = "${method}"\n${method === 'PUT' ? 'wrk.body = "bar"\n' : ''}`);
  const cpuBefore = await processCpuSeconds(pid);
  const output = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, `${url}/kv/foo`], { encoding: 'utf8' });
  const requestsPerSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]);
  const latencyAvgMs = toMs(/Latency\s+([\d.]+\w+)/.exec(output)?.[1]);
  const latencyP99Ms = toMs(/99%\s+([\d.]+\w+)/.exec(output)?.[1]);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0);
  const requests = Number(/(\d+) requests in/.exec(output)?.[1]);
  if (!Number.isFinite(requestsPerSecond)) throw new Error(`cannot parse wrk output:\n${output}`);
  const cpuMicrosPerRequest = ((await processCpuSeconds(pid) - cpuBefore) * 1e6) / requests;
  return { requestsPerSecond, latencyAvgMs, latencyP99Ms, errors, requests, cpuMicrosPerRequest };
}

function toMs(text: string | undefined): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text ?? '');
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

function ceiling(label: string, framework: string): Target {
  return { label, start: () => startCeiling({ framework }) };
}

function impulse(engine: string, sync: string): Target {
  return {
    label: `impulse ${engine}${engine === 'memory' ? '' : ` (sync ${sync})`}`,
    async start() {
      const dir = await mkdtemp(join(tmpdir(), `impulse-bench-${engine}-`));
      const server = await startServerProcess(['--engine', engine, '--data-dir', dir, '--sync', sync, '--log-level', 'info']);
      return {
        url: server.url,
        pid: server.pid,
        stop: async () => {
          server.kill('SIGTERM');
          await server.exited;
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

interface Cell {
  /** The round whose requests/s is the median of the rounds. */
  readonly median: WrkResult;
  readonly requestsPerSecondMin: number;
  readonly requestsPerSecondMax: number;
  /** Requests/s ÷ the ceiling's in the same round: median, min and max over the rounds. */
  readonly ratios: { median: number; min: number; max: number };
  /** Requests/s ÷ the memory engine's in the same round (median, min, max); undefined when memory is not measured. */
  readonly vsMemory: { median: number; min: number; max: number } | undefined;
  /** Server CPU µs per request, median over the rounds, and its ratio to the ceiling's in the same round (median, min, max). */
  readonly cpuMicrosPerRequest: number;
  readonly cpuRatios: { median: number; min: number; max: number };
  readonly errors: number;
}

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Per-round ratios `runs[i] ÷ baseline[i]` as median, min and max. */
function ratiosTo(runs: readonly WrkResult[], baseline: readonly WrkResult[]): { median: number; min: number; max: number } {
  const ratios = runs.map((r, round) => r.requestsPerSecond / baseline[round]!.requestsPerSecond);
  return { median: medianOf(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}

function formatRatio(ratio: { median: number; min: number; max: number } | undefined): string {
  return ratio === undefined ? '' : `${ratio.median.toFixed(2)}× (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)})`;
}

async function main(): Promise<void> {
  ensureWrk();
  const targets: Target[] = [ceiling('bare node:http + Map (ceiling)', 'node-http'), ceiling('fastify + Map', 'fastify')];
  for (const engine of engines) {
    if (engine === 'memory') targets.push(impulse(engine, 'none'));
    else for (const sync of syncModes) targets.push(impulse(engine, sync));
  }
  const loadAtStart = loadLine();
  console.log(`${machineLine()} · ${loadAtStart}`);
  console.log(`wrk -t1 -c${connections} -d${durationSeconds}s on /kv/foo; value "bar"; ${rounds} round(s), median reported\n`);
  // All servers run at once (idle ones cost nothing) and every operation is measured on all of
  // them back to back, round after round, so a burst of load from elsewhere on a shared machine
  // hits every target alike instead of skewing one row; ratios to the ceiling are taken per round.
  const running: Array<{ label: string; url: string; pid: number; stop: () => Promise<void> }> = [];
  const results = new Map<string, Map<string, Cell>>();
  try {
    for (const target of targets) running.push({ label: target.label, ...(await target.start()) });
    for (const method of operations) {
      const samples = new Map<string, WrkResult[]>();
      for (const { url, pid } of running) {
        if (method === 'GET') await fetch(`${url}/kv/foo`, { method: 'PUT', body: 'bar' }); // GET of a present key
        if (warmupSeconds > 0) await wrk(url, pid, method, warmupSeconds);
      }
      for (let round = 0; round < rounds; round++) {
        // Each round starts one server later, so no server is always measured first (or right after the same neighbour).
        const order = running.map((_, i) => running[(i + round) % running.length]!);
        for (const { label, url, pid } of order) {
          const r = await wrk(url, pid, method);
          samples.set(label, [...(samples.get(label) ?? []), r]);
          console.log(
            `${label.padEnd(34)} ${method.padEnd(6)} ${formatNumber(r.requestsPerSecond).padStart(8)} req/s  avg ${r.latencyAvgMs.toFixed(2)} ms  p99 ${r.latencyP99Ms.toFixed(2)} ms  cpu ${r.cpuMicrosPerRequest.toFixed(1)} µs/req  errors ${r.errors}`,
          );
        }
      }
      const ceilingRuns = samples.get(running[0]!.label)!;
      const memoryRuns = samples.get(impulse('memory', 'none').label);
      for (const [label, runs] of samples) {
        const perSecond = runs.map((r) => r.requestsPerSecond);
        const cpuRatios = runs.map((r, round) => r.cpuMicrosPerRequest / ceilingRuns[round]!.cpuMicrosPerRequest);
        const median = [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[Math.floor(runs.length / 2)]!;
        const cell: Cell = {
          median,
          requestsPerSecondMin: Math.min(...perSecond),
          requestsPerSecondMax: Math.max(...perSecond),
          ratios: ratiosTo(runs, ceilingRuns),
          vsMemory: memoryRuns === undefined || !label.startsWith('impulse') ? undefined : ratiosTo(runs, memoryRuns),
          cpuMicrosPerRequest: medianOf(runs.map((r) => r.cpuMicrosPerRequest)),
          cpuRatios: { median: medianOf(cpuRatios), min: Math.min(...cpuRatios), max: Math.max(...cpuRatios) },
          errors: runs.reduce((sum, r) => sum + r.errors, 0),
        };
        if (!results.has(label)) results.set(label, new Map());
        results.get(label)!.set(method, cell);
      }
    }
  } finally {
    for (const { stop } of running) await stop();
  }
  const rows: Array<Array<string | number>> = [];
  for (const [label, byMethod] of results) {
    for (const [method, cell] of byMethod) {
      rows.push([
        label,
        method,
        formatNumber(cell.median.requestsPerSecond),
        `${formatNumber(cell.requestsPerSecondMin)}–${formatNumber(cell.requestsPerSecondMax)}`,
        cell.median.latencyAvgMs.toFixed(2),
        cell.median.latencyP99Ms.toFixed(2),
        cell.errors,
        formatRatio(cell.ratios),
        formatRatio(cell.vsMemory),
        cell.cpuMicrosPerRequest.toFixed(1),
        formatRatio(cell.cpuRatios),
      ]);
    }
  }
  const nodeMajor = process.versions.node.split('.')[0];
  const markdown = [
    `## Concurrent on Node ${nodeMajor} (wrk, ${connections} connections, one key)`,
    '',
    `${machineLine()} · ${loadAtStart} at the start, ${loadLine()} at the end`,
    '',
    `\`node dist/bench/concurrent.js --rounds ${rounds} --duration ${durationSeconds} --warmup ${warmupSeconds} --ops ${operations.join(',')} --sync ${syncModes.join(',')}\`: \`wrk -t1 -c${connections} -d${durationSeconds}s\` per cell, all servers in one run, each operation measured on every server back to back, ${rounds} round(s), each round starting one server later; before the rounds every server gets ${warmupSeconds} s of the same load, not counted (JIT warm-up); wrk and the servers share the machine's two cores. requests/s is the median round, with the range over the rounds; "vs ceiling" is requests/s ÷ the bare node:http server's in the same round, median (min–max) over the rounds; "vs memory" the same against the memory engine. Server CPU is the server process's user + system time during the run ÷ requests served (from /proc), median over the rounds, and its ratio to the ceiling's in the same round, median (min–max): on a shared machine it moves far less than requests/s, and it is what the request path costs.`,
    '',
    table(['server', 'op', 'requests/s', 'range', 'avg ms', 'p99 ms', 'errors', 'vs ceiling', 'vs memory', 'server CPU µs/request', 'CPU vs ceiling'], rows),
  ].join('\n');
  console.log('\n' + markdown);
  await writeSection(`concurrent-node${nodeMajor}`, markdown);
}

await main();

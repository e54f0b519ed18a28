/**
 * The seed's concurrent benchmark: `wrk` with 100 connections for 10 s on PUT,
 * GET and DELETE of one key, against each impulse engine and, in the same
 * run, the ceiling (a bare node:http server holding a Map) and the same Map
 * behind fastify (to choose the HTTP layer by measurement).
 *
 *   node dist/bench/concurrent.js [--duration 10] [--connections 100] [--engines memory,leveldb]
 *
 * Installs wrk from Debian's packages when missing. Prints a table and writes
 * it to docs/benchmarks.md (section "concurrent").
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENGINE_NAMES } from '../src/storage/registry.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { flag, formatNumber, machineLine, table, writeSection } from './report.js';

interface WrkResult {
  requestsPerSecond: number;
  latencyAvgMs: number;
  latencyP99Ms: number;
  errors: number;
}

interface Target {
  readonly label: string;
  start(): Promise<{ url: string; stop: () => Promise<void> }>;
}

const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const engines = flag('engines', ENGINE_NAMES.join(',')).split(',');
const syncModes = flag('sync', 'fsync,none').split(',');
const rounds = Number(flag('rounds', '1'));

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

async function wrk(url: string, method: 'PUT' | 'GET' | 'DELETE'): Promise<WrkResult> {
  const script = join(tmpdir(), `impulse-wrk-${method}.lua`);
  await writeFile(script, `wrk.method = "${method}"\n${method === 'PUT' ? 'wrk.body = "bar"\n' : ''}`);
  const output = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${durationSeconds}s`, '--latency', '-s', script, `${url}/kv/foo`], { encoding: 'utf8' });
  const requestsPerSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1]);
  const latencyAvgMs = toMs(/Latency\s+([\d.]+\w+)/.exec(output)?.[1]);
  const latencyP99Ms = toMs(/99%\s+([\d.]+\w+)/.exec(output)?.[1]);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0);
  if (!Number.isFinite(requestsPerSecond)) throw new Error(`cannot parse wrk output:\n${output}`);
  return { requestsPerSecond, latencyAvgMs, latencyP99Ms, errors };
}

function toMs(text: string | undefined): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text ?? '');
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

function ceiling(label: string, framework: string): Target {
  return {
    label,
    async start() {
      const child: ChildProcess = spawn(process.execPath, [fileURLToPath(new URL('./ceiling-server.js', import.meta.url)), '--framework', framework], { stdio: ['ignore', 'pipe', 'inherit'] });
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          const match = /listening (\d+)/.exec(chunk.toString());
          if (match) resolve(Number(match[1]));
        });
        child.once('exit', (code) => reject(new Error(`ceiling server exited ${code}`)));
      });
      return {
        url: `http://127.0.0.1:${port}`,
        stop: async () => {
          child.kill('SIGTERM');
          await new Promise((resolve) => child.once('exit', resolve));
        },
      };
    },
  };
}

function impulse(engine: string, sync: string): Target {
  return {
    label: `impulse ${engine}${engine === 'memory' ? '' : ` (sync ${sync})`}`,
    async start() {
      const dir = await mkdtemp(join(tmpdir(), `impulse-bench-${engine}-`));
      const server = await startServerProcess(['--engine', engine, '--data-dir', dir, '--sync', sync, '--log-level', 'info']);
      return {
        url: server.url,
        stop: async () => {
          server.kill('SIGTERM');
          await server.exited;
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

async function main(): Promise<void> {
  ensureWrk();
  const targets: Target[] = [ceiling('bare node:http + Map (ceiling)', 'node-http'), ceiling('fastify + Map', 'fastify')];
  for (const engine of engines) {
    if (engine === 'memory') targets.push(impulse(engine, 'none'));
    else for (const sync of syncModes) targets.push(impulse(engine, sync));
  }
  console.log(machineLine());
  console.log(`wrk -t1 -c${connections} -d${durationSeconds}s on /kv/foo; value "bar"; ${rounds} round(s), median reported\n`);
  // All servers run at once (idle ones cost nothing) and every operation is measured on all of
  // them back to back, round after round, so a burst of load from elsewhere on a shared machine
  // hits every target alike instead of skewing one row.
  const running: Array<{ label: string; url: string; stop: () => Promise<void> }> = [];
  const results = new Map<string, Record<string, WrkResult>>();
  try {
    for (const target of targets) running.push({ label: target.label, ...(await target.start()) });
    for (const method of ['PUT', 'GET', 'DELETE'] as const) {
      const samples = new Map<string, WrkResult[]>();
      for (let round = 0; round < rounds; round++) {
        for (const { label, url } of running) {
          if (method === 'GET') await fetch(`${url}/kv/foo`, { method: 'PUT', body: 'bar' }); // GET of a present key
          const r = await wrk(url, method);
          samples.set(label, [...(samples.get(label) ?? []), r]);
          console.log(`${label.padEnd(34)} ${method.padEnd(6)} ${formatNumber(r.requestsPerSecond).padStart(8)} req/s  avg ${r.latencyAvgMs.toFixed(2)} ms  p99 ${r.latencyP99Ms.toFixed(2)} ms  errors ${r.errors}`);
        }
      }
      for (const [label, runs] of samples) {
        const sorted = [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
        const median = sorted[Math.floor(sorted.length / 2)]!;
        results.set(label, { ...(results.get(label) ?? {}), [method]: { ...median, errors: runs.reduce((sum, r) => sum + r.errors, 0) } });
      }
    }
  } finally {
    for (const { stop } of running) await stop();
  }
  const ceilingResult = results.get(targets[0]!.label)!;
  const rows: Array<Array<string | number>> = [];
  for (const [label, byMethod] of results) {
    for (const method of ['PUT', 'GET', 'DELETE']) {
      const r = byMethod[method]!;
      rows.push([label, method, formatNumber(r.requestsPerSecond), r.latencyAvgMs.toFixed(2), r.latencyP99Ms.toFixed(2), r.errors, `${(r.requestsPerSecond / ceilingResult[method]!.requestsPerSecond).toFixed(2)}×`]);
    }
  }
  const markdown = [
    '## Concurrent (wrk, 100 connections, one key)',
    '',
    `${machineLine()}`,
    '',
    `\`node dist/bench/concurrent.js --rounds ${rounds}\`: \`wrk -t1 -c${connections} -d${durationSeconds}s\` per cell, all servers in one run, each operation measured on every server back to back (median of ${rounds} round(s)); wrk and the server share the machine's cores. "vs ceiling" = requests/s ÷ the bare node:http server's.`,
    '',
    table(['server', 'op', 'requests/s', 'avg ms', 'p99 ms', 'errors', 'vs ceiling'], rows),
  ].join('\n');
  console.log('\n' + markdown);
  await writeSection('concurrent', markdown);
}

await main();

/**
 * The Redis protocol front end against Redis itself, with redis-benchmark:
 *
 *   redis-benchmark -t set,get -c 100 -n <n>          (no pipelining)
 *   redis-benchmark -t set,get -c 100 -n <n> -P 16    (16 commands per round trip)
 *
 * against, in the same run and round-robin (so every target sees the same
 * machine load): impulse --engine memory, impulse --engine lsm (--sync fsync:
 * every acknowledged SET is on disk), impulse --engine lsm --sync none, and
 * redis-server (Debian's) with persistence off and with `appendonly yes,
 * appendfsync everysec`. Median of `--rounds` runs per cell, with the range.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/resp.js [--rounds 3] [--requests 100000] [--pipelined-requests 400000]
 *
 * Prints the table and writes it to docs/benchmarks.md (section "resp").
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../testkit/process/ports.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { flag, formatNumber, machineLine, table, writeSection } from './report.js';

const rounds = Number(flag('rounds', '3'));
const requests = Number(flag('requests', '100000'));
const pipelinedRequests = Number(flag('pipelined-requests', '400000'));

interface Target {
  readonly name: string;
  readonly port: number;
  stop(): Promise<void>;
}

async function impulse(name: string, args: readonly string[]): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'impulse-bench-resp-'));
  const [port] = await freePorts(1);
  const server = await startServerProcess([...args, '--data-dir', dir, '--resp-port', String(port), '--log-level', 'info']);
  return {
    name,
    port: port!,
    stop: async () => {
      server.kill('SIGKILL');
      await server.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function redisServer(name: string, args: readonly string[]): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-bench-'));
  const [port] = await freePorts(1);
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...args], { stdio: 'ignore', detached: true });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let tries = 0; ; tries++) {
    try {
      if (execFileSync('redis-cli', ['-p', String(port), 'PING']).toString().trim() === 'PONG') break;
    } catch {
      // not up yet
    }
    if (tries > 100) throw new Error(`redis-server (${name}) did not start`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    name,
    port: port!,
    stop: async () => {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One redis-benchmark run: requests per second of SET and of GET. */
function benchmark(port: number, pipeline: number, n = pipeline > 1 ? pipelinedRequests : requests): { set: number; get: number } {
  const csv = execFileSync('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-t', 'set,get', '-c', '100', '-n', String(n), '-P', String(pipeline), '--csv'], {
    maxBuffer: 16 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  }).toString();
  const rps = (test: string): number => {
    const line = csv.split('\n').find((row) => row.startsWith(`"${test}"`));
    if (line === undefined) throw new Error(`no ${test} row in:\n${csv}`);
    return Number(JSON.parse(`[${line}]`)[1]);
  };
  return { set: rps('SET'), get: rps('GET') };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const targets: Target[] = [];
try {
  targets.push(await impulse('impulse memory', ['--engine', 'memory']));
  targets.push(await impulse('impulse lsm, fsync', ['--engine', 'lsm', '--sync', 'fsync']));
  targets.push(await impulse('impulse lsm, no fsync', ['--engine', 'lsm', '--sync', 'none']));
  targets.push(await redisServer('redis-server, persistence off', ['--appendonly', 'no']));
  targets.push(await redisServer('redis-server, appendfsync everysec', ['--appendonly', 'yes', '--appendfsync', 'everysec']));
  // A discarded pass: Node compiles impulse's hot paths in the first seconds, Redis needs none.
  for (const target of targets) benchmark(target.port, 1, Math.min(requests, 20_000));
  const results = new Map<string, number[]>();
  const record = (key: string, value: number): void => void results.set(key, [...(results.get(key) ?? []), value]);
  for (let round = 1; round <= rounds; round++) {
    for (const pipeline of [1, 16]) {
      for (const target of targets) {
        const { set, get } = benchmark(target.port, pipeline);
        record(`${target.name}|${pipeline}|SET`, set);
        record(`${target.name}|${pipeline}|GET`, get);
        console.error(`round ${round} -P ${pipeline} ${target.name}: SET ${formatNumber(set)}/s GET ${formatNumber(get)}/s`);
      }
    }
  }
  const cell = (name: string, pipeline: number, test: string): string => {
    const values = results.get(`${name}|${pipeline}|${test}`)!;
    return `${formatNumber(median(values))} (${formatNumber(Math.min(...values))}–${formatNumber(Math.max(...values))})`;
  };
  const reference = (pipeline: number, test: string): number => median(results.get(`redis-server, persistence off|${pipeline}|${test}`)!);
  const ratio = (name: string, pipeline: number, test: string): string => `${(median(results.get(`${name}|${pipeline}|${test}`)!) / reference(pipeline, test)).toFixed(2)}×`;
  const rows = targets.map((target) => [
    target.name,
    cell(target.name, 1, 'SET'), ratio(target.name, 1, 'SET'),
    cell(target.name, 1, 'GET'), ratio(target.name, 1, 'GET'),
    cell(target.name, 16, 'SET'), ratio(target.name, 16, 'SET'),
    cell(target.name, 16, 'GET'), ratio(target.name, 16, 'GET'),
  ]);
  const markdown = [
    '## Redis protocol: impulse vs redis-server (`node dist/bench/resp.js`)',
    '',
    machineLine(),
    '',
    `After one discarded warm-up pass per target: redis-benchmark (Debian redis-tools ${execFileSync('redis-benchmark', ['--version']).toString().trim().split(' ')[1] ?? ''}) \`-t set,get -c 100\`, ${formatNumber(requests)} requests without pipelining and ${formatNumber(pipelinedRequests)} with \`-P 16\`; requests per second, median of ${rounds} rounds (range in brackets), the targets taken in turn within each round. × is against redis-server with persistence off. The machine is shared with other engineers' work (2 cores): absolute figures move with its load; the ratios, taken in the same rounds, are the comparison.`,
    '',
    table(['target', 'SET', '×', 'GET', '×', 'SET -P 16', '×', 'GET -P 16', '×'], rows),
  ].join('\n');
  console.log(markdown);
  await writeSection('resp', markdown);
} finally {
  for (const target of targets) await target.stop();
}

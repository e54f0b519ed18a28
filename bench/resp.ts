/**
 * The Redis protocol front end against Redis itself, with redis-benchmark:
 *
 *   redis-benchmark -t set -c 100 -n <n>  and  -t get   (no pipelining)
 *   the same with -P 16                                 (16 commands per round trip)
 *
 * against, in the same run and round-robin (so every target sees the same
 * machine load): a bare node:net server with a Map (resp-ceiling-server.ts:
 * what Node's sockets cost), the same reading through `onread` (an
 * experiment on Node internals: what the readable stream costs), impulse --engine memory, impulse --engine lsm
 * (--sync fsync: every acknowledged SET is on disk), impulse --engine lsm
 * --sync none, and redis-server (Debian's) with persistence off and with
 * `appendonly yes, appendfsync everysec`. Per cell: requests per second and
 * the server's CPU time per request (user + system, and user alone, /proc), median of
 * `--rounds` runs with the range; the load average at the start and the end.
 *
 *   flock /tmp/impulse-bench.lock node dist/bench/resp.js [--rounds 3] [--requests 100000] [--pipelined-requests 400000]
 *     [--targets ceiling,onread,memory,lsm-fsync,lsm,redis,redis-aof]   (redis, the reference, always runs;
 *      ceiling-turn, only when named: the ceiling writing its replies at the end of the event loop's turn)
 *
 * Interleaved: within a round each cell (SET, GET, with and without -P 16)
 * runs on every target back to back, the order rotating per round; the ratio
 * to Redis is taken per round (printed as it goes) and reported as the median
 * of the rounds with its range, so noise shows as spread, not as a change.
 *
 * Prints the tables and writes them to docs/benchmarks.md (section "resp").
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { reapOnExit } from '../testkit/process/member-process.js';
import { freePorts } from '../testkit/process/ports.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { flag, formatNumber, loadLine, machineLine, medianCell, processCpuTimes, table, writeSection } from './report.js';

const rounds = Number(flag('rounds', '3'));
const requests = Number(flag('requests', '100000'));
const pipelinedRequests = Number(flag('pipelined-requests', '400000'));
/** A redis-benchmark run that takes longer than this failed (it spins when its server is gone). */
const RUN_TIMEOUT_MS = 300_000;
const REFERENCE = 'redis-server, persistence off';

interface Target {
  readonly name: string;
  readonly port: number;
  /** The server process, for its CPU time. */
  readonly pid: number;
  stop(): Promise<void>;
}

async function impulse(name: string, args: readonly string[]): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'impulse-bench-resp-'));
  const [port] = await freePorts(1);
  const server = await startServerProcess([...args, '--data-dir', dir, '--resp-port', String(port), '--log-level', 'info']);
  return {
    name,
    port: port!,
    pid: server.pid,
    stop: async () => {
      server.kill('SIGKILL');
      await server.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts `command args` in its own process group; up once redis-cli's PING on `port` answers PONG. */
async function spawnServer(name: string, port: number, command: string, args: readonly string[], cleanup: () => Promise<void> = async () => {}): Promise<Target> {
  const child: ChildProcess = spawn(command, args, { stdio: 'ignore', detached: true });
  reapOnExit(child); // an interrupted benchmark leaves no server behind
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let tries = 0; ; tries++) {
    try {
      if (execFileSync('redis-cli', ['-p', String(port), 'PING'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() === 'PONG') break;
    } catch {
      // not up yet
    }
    if (tries > 100) throw new Error(`${name} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    name,
    port,
    pid: child.pid!,
    stop: async () => {
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
      await cleanup();
    },
  };
}

async function redisServer(name: string, args: readonly string[]): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-bench-'));
  const [port] = await freePorts(1);
  const redisArgs = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...args];
  return spawnServer(name, port!, 'redis-server', redisArgs, () => rm(dir, { recursive: true, force: true }));
}

async function ceiling(name: string, readPath: 'stream' | 'onread', replyAt: 'once' | 'turn' = 'once'): Promise<Target> {
  const [port] = await freePorts(1);
  const script = fileURLToPath(new URL('./resp-ceiling-server.js', import.meta.url));
  return spawnServer(name, port!, process.execPath, [script, '--port', String(port), '--read-path', readPath, '--reply-at', replyAt]);
}

interface Run {
  readonly rps: number;
  /** The server's CPU time (user + system) per request, µs. */
  readonly cpuUs: number;
  /** Of which in user space (Node, V8, impulse; Redis's own code), µs. */
  readonly userUs: number;
}

/** One redis-benchmark run of one test: requests per second and the server's CPU per request. */
async function benchmark(target: Target, test: 'set' | 'get', pipeline: number, n = pipeline > 1 ? pipelinedRequests : requests): Promise<Run> {
  const before = await processCpuTimes(target.pid);
  const csv = execFileSync('redis-benchmark', ['-h', '127.0.0.1', '-p', String(target.port), '-t', test, '-c', '100', '-n', String(n), '-P', String(pipeline), '--csv'], {
    maxBuffer: 16 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: RUN_TIMEOUT_MS,
  }).toString();
  const after = await processCpuTimes(target.pid);
  const userUs = ((after.userSeconds - before.userSeconds) * 1e6) / n;
  const cpuUs = userUs + ((after.systemSeconds - before.systemSeconds) * 1e6) / n;
  const line = csv.split('\n').find((row) => row.startsWith(`"${test.toUpperCase()}"`));
  if (line === undefined) throw new Error(`no ${test} row in:\n${csv}`);
  return { rps: Number(JSON.parse(`[${line}]`)[1]), cpuUs, userUs };
}

const CELLS = [
  { pipeline: 1, test: 'set', title: 'SET' },
  { pipeline: 1, test: 'get', title: 'GET' },
  { pipeline: 16, test: 'set', title: 'SET -P 16' },
  { pipeline: 16, test: 'get', title: 'GET -P 16' },
] as const;

/** The targets by the short id `--targets` takes, in table order; redis (the reference) is always run. */
const TARGETS: readonly { readonly id: string; start(): Promise<Target> }[] = [
  { id: 'ceiling', start: () => ceiling('bare node:net + Map (ceiling)', 'stream') },
  { id: 'onread', start: () => ceiling('the same, onread (Node internals)', 'onread') },
  { id: 'ceiling-turn', start: () => ceiling("the ceiling, replies at the turn's end", 'stream', 'turn') },
  { id: 'memory', start: () => impulse('impulse memory', ['--engine', 'memory']) },
  { id: 'lsm-fsync', start: () => impulse('impulse lsm, fsync', ['--engine', 'lsm', '--sync', 'fsync']) },
  { id: 'lsm', start: () => impulse('impulse lsm, no fsync', ['--engine', 'lsm', '--sync', 'none']) },
  { id: 'redis', start: () => redisServer(REFERENCE, ['--appendonly', 'no']) },
  { id: 'redis-aof', start: () => redisServer('redis-server, appendfsync everysec', ['--appendonly', 'yes', '--appendfsync', 'everysec']) },
];
/** Not run unless named: the reply-timing experiment (resp-ceiling-server.ts, `--reply-at turn`). */
const OPT_IN = ['ceiling-turn'];
const chosen = flag('targets', TARGETS.filter((target) => !OPT_IN.includes(target.id)).map((target) => target.id).join(',')).split(',');
const unknownTargets = chosen.filter((id) => !TARGETS.some((target) => target.id === id));
if (unknownTargets.length > 0) throw new Error(`--targets takes ${TARGETS.map((target) => target.id).join(', ')}; not ${unknownTargets.join(', ')}`);

/** `values` rotated left by `by`: each round starts the cell with another target, so no target always runs first. */
function rotated<T>(values: readonly T[], by: number): T[] {
  const shift = by % values.length;
  return [...values.slice(shift), ...values.slice(0, shift)];
}

const targets: Target[] = [];
try {
  const loadAtStart = loadLine();
  for (const { id, start } of TARGETS) if (id === 'redis' || chosen.includes(id)) targets.push(await start());
  // A discarded pass: Node compiles impulse's hot paths in the first seconds, Redis needs none.
  for (const target of targets) for (const test of ['set', 'get'] as const) await benchmark(target, test, 1, Math.min(requests, 20_000));
  const runs = new Map<string, Run[]>();
  const key = (name: string, pipeline: number, test: string): string => `${name}|${pipeline}|${test}`;
  // Interleaved: within a round, each cell runs on every target back to back (in an order that
  // rotates from round to round), so a change in the machine's load hits the targets of one cell
  // alike; the ratio to Redis is then taken per round, and its median and spread printed.
  for (let round = 1; round <= rounds; round++) {
    for (const { pipeline, test, title } of CELLS) {
      for (const target of rotated(targets, round - 1)) {
        const run = await benchmark(target, test, pipeline);
        runs.set(key(target.name, pipeline, test), [...(runs.get(key(target.name, pipeline, test)) ?? []), run]);
        console.error(`round ${round} ${title} ${target.name}: ${formatNumber(run.rps)}/s, ${run.cpuUs.toFixed(1)} µs CPU/request, ${run.userUs.toFixed(1)} user (${loadLine()})`);
      }
      const reference = runs.get(key(REFERENCE, pipeline, test))![round - 1]!.rps;
      const ratios = targets.map((target) => `${target.name} ${(runs.get(key(target.name, pipeline, test))![round - 1]!.rps / reference).toFixed(2)}×`);
      console.error(`round ${round} ${title}, against Redis: ${ratios.join(', ')}`);
    }
  }
  const loadAtEnd = loadLine();
  const of = (name: string, pipeline: number, test: string, figure: keyof Run): number[] => runs.get(key(name, pipeline, test))!.map((run) => run[figure]);
  /** Per round, the target's requests/s over Redis's in the same round; median (min–max) over the rounds. */
  const ratios = (name: string, pipeline: number, test: string): string => {
    const reference = of(REFERENCE, pipeline, test, 'rps');
    return medianCell(
      of(name, pipeline, test, 'rps').map((rps, round) => rps / reference[round]!),
      (value) => `${value.toFixed(2)}×`,
    );
  };
  const throughput = targets.map((target) => [target.name, ...CELLS.flatMap(({ pipeline, test }) => [medianCell(of(target.name, pipeline, test, 'rps')), ratios(target.name, pipeline, test)])]);
  const cpuOf = (figure: 'cpuUs' | 'userUs'): string[][] =>
    targets.map((target) => [target.name, ...CELLS.map(({ pipeline, test }) => medianCell(of(target.name, pipeline, test, figure), (value) => value.toFixed(1)))]);
  const markdown = [
    '## Redis protocol: impulse vs redis-server (`node dist/bench/resp.js`)',
    '',
    machineLine(),
    `Load average (1 / 5 / 15 min) at the start: ${loadAtStart}; at the end: ${loadAtEnd}.`,
    '',
    `After one discarded warm-up pass per target: redis-benchmark (Debian redis-tools ${execFileSync('redis-benchmark', ['--version']).toString().trim().split(' ')[1] ?? ''}) \`-t set\` and \`-t get\` with \`-c 100\`, ${formatNumber(requests)} requests without pipelining and ${formatNumber(pipelinedRequests)} with \`-P 16\`; median of ${rounds} rounds (range in brackets); within a round each cell runs on every target back to back, the targets' order rotating from round to round. × is a target's requests/s over redis-server's (persistence off) in the same round: the median of the rounds' ratios, with their range — a change is a change when it moves the ratio outside that range. The machine is shared with other engineers' work (2 cores, redis-benchmark on them too): absolute figures move with its load; the ratios, taken in the same rounds, are the comparison, and the CPU time per request below moves far less than requests/s.`,
    '',
    'Requests per second:',
    '',
    table(['target', ...CELLS.flatMap(({ title }) => [title, '×'])], throughput),
    '',
    "The server's CPU time (user + system, from /proc) per request, µs:",
    '',
    table(['target', ...CELLS.map(({ title }) => title)], cpuOf('cpuUs')),
    '',
    'Of which in user space (the rest is the kernel: system calls, TCP over loopback), µs:',
    '',
    table(['target', ...CELLS.map(({ title }) => title)], cpuOf('userUs')),
  ].join('\n');
  console.log(markdown);
  await writeSection('resp', markdown);
} finally {
  for (const target of targets) await target.stop();
}

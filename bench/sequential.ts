/**
 * The seed's sequential benchmark: N requests one after another with a
 * keep-alive client (src/client): PUT, GET (present), DELETE, GET (missing),
 * per engine and sync mode.
 *
 *   node dist/bench/sequential.js [--n 2048] [--runs 3] [--engines memory,leveldb] [--sync none,fsync]
 *
 * The first row is the reference, measured in the same run and the same way:
 * a bare node:http server holding a Map (its own process) and a bare
 * node:http client (bench/lib/bare-client.ts).
 *
 * Each cell is the median (min–max) of `--runs` runs (default 3); every run
 * starts a fresh server per engine and sync mode, engines taking turns. Beside
 * requests/s, the server process's CPU µs per request (from /proc, 10 ms
 * ticks: ±10 ms over a column, so use n ≥ 2000) and the client's (this
 * process): on a shared machine the CPU figures move far less than the rates.
 * Prints a table and writes it to docs/benchmarks.md (section "sequential").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../src/client/client.js';
import { ENGINE_NAMES } from '../src/storage/registry.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { bareClient } from './lib/bare-client.js';
import { startCeiling } from './lib/ceiling.js';
import { flag, formatNumber, loadLine, machineLine, medianCell, processCpuSeconds, table, writeSection } from './report.js';

const n = Number(flag('n', '2048'));
const runs = Number(flag('runs', '3'));
const engines = flag('engines', ENGINE_NAMES.join(',')).split(',');
const syncModes = flag('sync', 'none,fsync').split(',');

async function timed(count: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await op(i);
  return count / ((performance.now() - started) / 1000);
}

interface Column {
  readonly rate: number;
  /** Server process CPU µs per request. */
  readonly serverCpuUs: number;
  /** Client (this process) CPU µs per request. */
  readonly clientCpuUs: number;
}

/** `timed`, with the server's and this process's CPU time per request. */
async function column(serverPid: number, count: number, op: (i: number) => Promise<unknown>): Promise<Column> {
  const serverBefore = await processCpuSeconds(serverPid);
  const clientBefore = process.cpuUsage();
  const rate = await timed(count, op);
  const client = process.cpuUsage(clientBefore);
  const serverCpuUs = ((await processCpuSeconds(serverPid)) - serverBefore) * 1e6 / count;
  return { rate, serverCpuUs, clientCpuUs: (client.user + client.system) / count };
}

const COLUMNS = ['PUT', 'GET (present)', 'DELETE', 'GET (missing)'] as const;
/** The reference row's name among the engines. */
const CEILING = 'ceiling';

/** The three calls a column makes, whichever client makes them. */
interface SequentialClient {
  put(key: string, value: Buffer): Promise<unknown>;
  get(key: string): Promise<unknown>;
  del(key: string): Promise<unknown>;
}

/** Warm-up, then the four columns against a server whose process is `serverPid`. */
async function columns(serverPid: number, client: SequentialClient): Promise<Column[]> {
  const value = Buffer.from('bar');
  // Warm-up: let V8 optimize the server's and the client's hot paths before timing.
  await timed(3000, (i) => (i % 3 === 0 ? client.put(`warmup-${i}`, value) : i % 3 === 1 ? client.get(`warmup-${i - 1}`) : client.del(`warmup-${i - 2}`)));
  const put = await column(serverPid, n, (i) => client.put(`key-${i}`, value));
  const getPresent = await column(serverPid, n, (i) => client.get(`key-${i}`));
  const del = await column(serverPid, n, (i) => client.del(`key-${i}`));
  const getMissing = await column(serverPid, n, (i) => client.get(`key-${i}`));
  return [put, getPresent, del, getMissing];
}

/** One run against a fresh server: requests/s and CPU per request, per column. */
async function measure(engine: string, sync: string): Promise<Column[]> {
  if (engine === CEILING) return measureCeiling();
  const dir = await mkdtemp(join(tmpdir(), `impulse-seq-${engine}-`));
  const server = await startServerProcess(['--engine', engine, '--data-dir', dir, '--sync', sync]);
  const client = new ImpulseClient({ endpoint: server.url, connectionsMax: 1 });
  try {
    return await columns(server.pid, client);
  } finally {
    client.close();
    server.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The reference in the same run: a bare node:http server holding a Map in its
 * own process (bench/ceiling-server.ts) and a bare node:http client
 * (bench/lib/bare-client.ts), so it pays the same cross-process round trip.
 */
async function measureCeiling(): Promise<Column[]> {
  const server = await startCeiling();
  const client = bareClient(Number(new URL(server.url).port));
  try {
    return await columns(server.pid, { put: (key, value) => client.send('PUT', key, value), get: (key) => client.send('GET', key), del: (key) => client.send('DELETE', key) });
  } finally {
    client.close();
    await server.stop();
  }
}

async function main(): Promise<void> {
  console.log(machineLine());
  console.log(loadLine());
  const configurations = [
    { engine: CEILING, sync: 'none', label: 'bare node:http (reference)' },
    ...engines.flatMap((engine) => (engine === 'memory' ? ['none'] : syncModes).map((sync) => ({ engine, sync, label: engine === 'memory' ? 'memory' : `${engine} (sync ${sync})` }))),
  ];
  const results = new Map<string, Column[][]>(configurations.map(({ label }) => [label, []]));
  for (let run = 1; run <= runs; run++) {
    for (const { engine, sync, label } of configurations) {
      const figures = await measure(engine, sync);
      results.get(label)!.push(figures);
      const cells = COLUMNS.map((name, index) => `${name} ${formatNumber(figures[index]!.rate)}/s (cpu ${formatNumber(figures[index]!.serverCpuUs)}+${formatNumber(figures[index]!.clientCpuUs)} µs)`);
      console.log(`run ${run}/${runs} ${label.padEnd(24)} ${cells.join('  ')}`);
    }
  }
  const cell = (label: string, index: number, pick: (figure: Column) => number): string => medianCell(results.get(label)!.map((figures) => pick(figures[index]!)));
  const rows = configurations.map(({ label }) => [label, ...COLUMNS.map((_, index) => cell(label, index, (figure) => figure.rate))]);
  const cpuRows = configurations.map(({ label }) => [label, ...COLUMNS.map((_, index) => `${cell(label, index, (figure) => figure.serverCpuUs)} + ${cell(label, index, (figure) => figure.clientCpuUs)}`)]);
  const markdown = [
    '## Sequential (one keep-alive connection, requests one after another)',
    '',
    machineLine(),
    '',
    `\`node dist/bench/sequential.js --n ${n} --runs ${runs} --engines ${engines.join(',')} --sync ${syncModes.join(',')}\`: requests/s, median (min–max) of ${runs} run(s), ${n} requests per column, value "bar". Shared machine.`,
    '',
    table(['engine', ...COLUMNS], rows),
    '',
    `CPU µs per request, server process + client process (${loadLine()} at the end):`,
    '',
    table(['engine', ...COLUMNS], cpuRows),
  ].join('\n');
  console.log('\n' + markdown);
  await writeSection('sequential', markdown);
}

await main();

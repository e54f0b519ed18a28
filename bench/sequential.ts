/**
 * The seed's sequential benchmark: N requests one after another with a
 * keep-alive client (src/client): PUT, GET (present), DELETE, GET (missing),
 * per engine and sync mode.
 *
 *   node dist/bench/sequential.js [--n 2048] [--runs 3] [--engines memory,leveldb] [--sync none,fsync]
 *
 * Each cell is the median (min–max) of `--runs` runs (default 3); every run
 * starts a fresh server per engine and sync mode, engines taking turns.
 * Prints a table and writes it to docs/benchmarks.md (section "sequential").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../src/client/client.js';
import { ENGINE_NAMES } from '../src/storage/registry.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { flag, formatNumber, machineLine, medianCell, table, writeSection } from './report.js';

const n = Number(flag('n', '2048'));
const runs = Number(flag('runs', '3'));
const engines = flag('engines', ENGINE_NAMES.join(',')).split(',');
const syncModes = flag('sync', 'none,fsync').split(',');

async function timed(count: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await op(i);
  return count / ((performance.now() - started) / 1000);
}

const COLUMNS = ['PUT', 'GET (present)', 'DELETE', 'GET (missing)'] as const;

/** One run against a fresh server: requests/s per column. */
async function measure(engine: string, sync: string): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), `impulse-seq-${engine}-`));
  const server = await startServerProcess(['--engine', engine, '--data-dir', dir, '--sync', sync]);
  const client = new ImpulseClient({ endpoint: server.url, connectionsMax: 1 });
  try {
    const value = Buffer.from('bar');
    // Warm-up: let V8 optimize the server's and the client's hot paths before timing.
    await timed(3000, (i) => (i % 3 === 0 ? client.put(`warmup-${i}`, value) : i % 3 === 1 ? client.get(`warmup-${i - 1}`) : client.del(`warmup-${i - 2}`)));
    const put = await timed(n, (i) => client.put(`key-${i}`, value));
    const getPresent = await timed(n, (i) => client.get(`key-${i}`));
    const del = await timed(n, (i) => client.del(`key-${i}`));
    const getMissing = await timed(n, (i) => client.get(`key-${i}`));
    return [put, getPresent, del, getMissing];
  } finally {
    client.close();
    server.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(machineLine());
  const configurations = engines.flatMap((engine) => (engine === 'memory' ? ['none'] : syncModes).map((sync) => ({ engine, sync, label: engine === 'memory' ? 'memory' : `${engine} (sync ${sync})` })));
  const results = new Map<string, number[][]>(configurations.map(({ label }) => [label, []]));
  for (let run = 1; run <= runs; run++) {
    for (const { engine, sync, label } of configurations) {
      const figures = await measure(engine, sync);
      results.get(label)!.push(figures);
      console.log(`run ${run}/${runs} ${label.padEnd(24)} ${COLUMNS.map((column, index) => `${column} ${formatNumber(figures[index]!)}`).join('  ')} requests/s`);
    }
  }
  const rows = configurations.map(({ label }) => [label, ...COLUMNS.map((_, index) => medianCell(results.get(label)!.map((figures) => figures[index]!)))]);
  const markdown = [
    '## Sequential (one keep-alive connection, requests one after another)',
    '',
    machineLine(),
    '',
    `\`node dist/bench/sequential.js --n ${n} --runs ${runs}\`: requests/s, median (min–max) of ${runs} run(s), ${n} requests per column, value "bar". Shared machine.`,
    '',
    table(['engine', ...COLUMNS], rows),
  ].join('\n');
  console.log('\n' + markdown);
  await writeSection('sequential', markdown);
}

await main();

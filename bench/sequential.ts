/**
 * The seed's sequential benchmark: N requests one after another with a
 * keep-alive client (src/client): PUT, GET (present), DELETE, GET (missing),
 * per engine and sync mode.
 *
 *   node dist/bench/sequential.js [--n 2048] [--engines memory,leveldb] [--sync none,fsync]
 *
 * Prints a table and writes it to docs/benchmarks.md (section "sequential").
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../src/client/client.js';
import { ENGINE_NAMES } from '../src/storage/registry.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { flag, formatNumber, machineLine, table, writeSection } from './report.js';

const n = Number(flag('n', '2048'));
const engines = flag('engines', ENGINE_NAMES.join(',')).split(',');
const syncModes = flag('sync', 'none,fsync').split(',');

async function timed(count: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await op(i);
  return count / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  console.log(machineLine());
  const rows: Array<Array<string | number>> = [];
  for (const engine of engines) {
    for (const sync of engine === 'memory' ? ['none'] : syncModes) {
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
        const label = engine === 'memory' ? 'memory' : `${engine} (sync ${sync})`;
        rows.push([label, formatNumber(put), formatNumber(getPresent), formatNumber(del), formatNumber(getMissing)]);
        console.log(`${label.padEnd(24)} PUT ${formatNumber(put)}  GET present ${formatNumber(getPresent)}  DELETE ${formatNumber(del)}  GET missing ${formatNumber(getMissing)} requests/s`);
      } finally {
        client.close();
        server.kill('SIGTERM');
        await server.exited;
        await rm(dir, { recursive: true, force: true });
      }
    }
  }
  const markdown = [
    '## Sequential (one keep-alive connection, requests one after another)',
    '',
    machineLine(),
    '',
    `\`node dist/bench/sequential.js --n ${n}\`: requests/s, ${n} requests per column, value "bar".`,
    '',
    table(['engine', 'PUT', 'GET (present)', 'DELETE', 'GET (missing)'], rows),
  ].join('\n');
  console.log('\n' + markdown);
  await writeSection('sequential', markdown);
}

await main();

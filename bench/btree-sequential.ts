/**
 * Where a sequential btree write's time goes: one writer, one request at a
 * time (the shape of `bench/sequential.ts`), measured in layers in one run so
 * the layers can be subtracted:
 *
 *   disk      the bare fdatasync rate of the temp directory's disk: write 4 KiB
 *             at offset 0 then fdatasync, through a FileHandle (what NodeVfs
 *             does) and with the synchronous calls (the device's own cost)
 *   engine    BTreeEngine.put / del in-process (no HTTP), sync fsync and none
 *   http      `impulse serve --engine btree` over one keep-alive connection,
 *             sync fsync and none, beside `--engine memory` (the HTTP floor)
 *
 *   npx tsc -p . && flock /tmp/impulse-bench.lock node dist/bench/btree-sequential.js [--n 2000] [--runs 3]
 *       [--out bench/results/btree-sequential.md]
 *
 * Every figure is operations per second, the median of `--runs` runs with the
 * spread (min–max). Keys `key-<i>`, value "bar", as bench/sequential.ts.
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../src/client/client.js';
import { BTreeEngine } from '../src/storage/btree/btree-engine.js';
import type { SyncMode } from '../src/storage/engine.js';
import { startServerProcess } from '../testkit/process/server-process.js';
import { flag, formatNumber, machineLine, medianCell, printAndSave, table } from './report.js';

const n = Number(flag('n', '2000'));
const runs = Number(flag('runs', '3'));
const out = flag('out', 'bench/results/btree-sequential.md');
const VALUE = Buffer.from('bar');

async function rate(count: number, op: (index: number) => Promise<unknown> | void): Promise<number> {
  const started = performance.now();
  for (let index = 0; index < count; index++) await op(index);
  return count / ((performance.now() - started) / 1000);
}

async function withTempDir<T>(prefix: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Bare fdatasync: 4 KiB written at offset 0, then fdatasync; async (FileHandle) and sync calls. */
async function disk(): Promise<{ asyncRate: number; syncRate: number }> {
  return withTempDir('impulse-fsync-', async (dir) => {
    const page = Buffer.alloc(4096, 1);
    const handle = await open(join(dir, 'async'), 'w+');
    const asyncRate = await rate(n, async () => {
      await handle.write(page, 0, page.length, 0);
      await handle.datasync();
    });
    await handle.close();
    const fd = openSync(join(dir, 'sync'), 'w+');
    const syncRate = await rate(n, () => {
      writeSync(fd, page, 0, page.length, 0);
      fdatasyncSync(fd);
    });
    closeSync(fd);
    return { asyncRate, syncRate };
  });
}

/** BTreeEngine.put then .del of `n` keys, one at a time, in-process. */
async function engine(sync: SyncMode): Promise<{ put: number; del: number }> {
  return withTempDir('impulse-btree-seq-', async (dir) => {
    const subject = new BTreeEngine({ dataDir: dir, sync });
    await subject.open();
    try {
      await rate(500, (index) => subject.put(Buffer.from(`warmup-${index}`), VALUE));
      const put = await rate(n, (index) => subject.put(Buffer.from(`key-${index}`), VALUE));
      const del = await rate(n, (index) => subject.del(Buffer.from(`key-${index}`)));
      return { put, del };
    } finally {
      await subject.close();
    }
  });
}

/** PUT then DELETE of `n` keys over HTTP, one keep-alive connection, one request at a time. */
async function http(engineName: string, sync: SyncMode): Promise<{ put: number; del: number }> {
  return withTempDir(`impulse-seq-${engineName}-`, async (dir) => {
    const server = await startServerProcess(['--engine', engineName, '--data-dir', dir, '--sync', sync]);
    const client = new ImpulseClient({ endpoint: server.url, connectionsMax: 1 });
    try {
      // Warm-up as in bench/sequential.ts: let V8 optimize both sides' hot paths.
      await rate(3000, (index) => (index % 3 === 0 ? client.put(`warmup-${index}`, VALUE) : index % 3 === 1 ? client.get(`warmup-${index - 1}`) : client.del(`warmup-${index - 2}`)));
      const put = await rate(n, (index) => client.put(`key-${index}`, VALUE));
      const del = await rate(n, (index) => client.del(`key-${index}`));
      return { put, del };
    } finally {
      client.close();
      server.kill('SIGTERM');
      await server.exited;
    }
  });
}

async function main(): Promise<void> {
  console.log(machineLine());
  const figures = new Map<string, number[]>();
  const record = (name: string, value: number): void => {
    figures.set(name, [...(figures.get(name) ?? []), value]);
    console.log(`${name.padEnd(36)} ${formatNumber(value)}/s`);
  };
  for (let run = 1; run <= runs; run++) {
    console.log(`run ${run}/${runs}`);
    const bare = await disk();
    record('disk: write 4 KiB + fdatasync (FileHandle)', bare.asyncRate);
    record('disk: write 4 KiB + fdatasync (sync calls)', bare.syncRate);
    for (const sync of ['fsync', 'none'] as const) {
      const inProcess = await engine(sync);
      record(`engine btree sync ${sync}: put`, inProcess.put);
      record(`engine btree sync ${sync}: del`, inProcess.del);
      const overHttp = await http('btree', sync);
      record(`http btree sync ${sync}: PUT`, overHttp.put);
      record(`http btree sync ${sync}: DELETE`, overHttp.del);
    }
    const floor = await http('memory', 'none');
    record('http memory: PUT', floor.put);
    record('http memory: DELETE', floor.del);
  }
  const rows = [...figures].map(([name, values]) => [name, medianCell(values)]);
  const markdown = [
    '# btree: where a sequential write goes',
    '',
    machineLine(),
    '',
    `\`node dist/bench/btree-sequential.js --n ${n} --runs ${runs}\`: operations/s, median (min–max) of ${runs} run(s), ${n} operations per figure; one writer, one operation at a time. Shared machine.`,
    '',
    table(['layer', 'ops/s'], rows),
    '',
  ].join('\n');
  printAndSave(out, markdown);
}

await main();

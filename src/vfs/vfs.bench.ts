/**
 * Per-call cost of the Vfs implementations against raw node:fs/promises.
 * A script, not a test: `flock /tmp/impulse-bench.lock node dist/src/vfs/vfs.bench.js`.
 * Prints a table (machine, Node version, date) to paste into src/vfs/README.md.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MemVfs } from '../../testkit/vfs/mem-vfs.js';
import { NodeVfs } from './node-vfs.js';
import type { Vfs } from './vfs.js';

const BLOCK_BYTES = 4096;
const block = Buffer.alloc(BLOCK_BYTES, 0x5a);

interface Row {
  readonly what: string;
  readonly operations: number;
  readonly elapsedMs: number;
}

async function timed(what: string, operations: number, body: (i: number) => Promise<unknown>): Promise<Row> {
  for (let i = 0; i < Math.min(200, operations); i++) await body(i); // warm-up
  const start = performance.now();
  for (let i = 0; i < operations; i++) await body(i);
  return { what, operations, elapsedMs: performance.now() - start };
}

async function vfsRows(label: string, vfs: Vfs, dir: string, syncOperations: number): Promise<Row[]> {
  const file = await vfs.open(join(dir, `${label}.dat`), { create: true, truncate: true });
  const rows: Row[] = [];
  rows.push(await timed(`${label}: write 4 KiB (append, no sync)`, 20_000, (i) => file.write(i * BLOCK_BYTES, block)));
  rows.push(await timed(`${label}: read 4 KiB (positional, cached)`, 20_000, (i) => file.read((i % 20_000) * BLOCK_BYTES, BLOCK_BYTES)));
  rows.push(
    await timed(`${label}: write 4 KiB + sync (fdatasync)`, syncOperations, async (i) => {
      await file.write(i * BLOCK_BYTES, block);
      await file.sync();
    }),
  );
  rows.push(await timed(`${label}: syncDir`, syncOperations, () => vfs.syncDir(dir)));
  await file.close();
  return rows;
}

async function rawRows(dir: string, syncOperations: number): Promise<Row[]> {
  const handle = await open(join(dir, 'raw.dat'), 'w+');
  const scratch = Buffer.alloc(BLOCK_BYTES);
  const rows: Row[] = [];
  rows.push(await timed('raw FileHandle: write 4 KiB (append, no sync)', 20_000, (i) => handle.write(block, 0, BLOCK_BYTES, i * BLOCK_BYTES)));
  rows.push(await timed('raw FileHandle: read 4 KiB (positional, cached)', 20_000, (i) => handle.read(scratch, 0, BLOCK_BYTES, (i % 20_000) * BLOCK_BYTES)));
  rows.push(
    await timed('raw FileHandle: write 4 KiB + datasync', syncOperations, async (i) => {
      await handle.write(block, 0, BLOCK_BYTES, i * BLOCK_BYTES);
      await handle.datasync();
    }),
  );
  await handle.close();
  return rows;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'impulse-vfs-bench-'));
  const syncOperations = 300;
  try {
    const rows = [...(await rawRows(dir, syncOperations)), ...(await vfsRows('NodeVfs', new NodeVfs(), dir, syncOperations))];
    const mem = new MemVfs();
    await mem.mkdir(dir);
    rows.push(...(await vfsRows('MemVfs', mem, dir, 20_000)));
    console.log(`machine: ${cpus()[0]?.model ?? 'unknown'} x${cpus().length}; node ${process.version}; ${new Date().toISOString()}; dir ${tmpdir()}`);
    console.log('| operation | ops | µs/op | ops/s |');
    console.log('|---|---:|---:|---:|');
    for (const row of rows) {
      const microsPerOp = (row.elapsedMs * 1000) / row.operations;
      console.log(`| ${row.what} | ${row.operations} | ${microsPerOp.toFixed(1)} | ${Math.round(1e6 / microsPerOp)} |`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

/**
 * The background work itself: writing a frozen memtable's entries as a
 * table, and merging a compaction's input tables into new tables for the
 * next level. Everything here reads and writes files through the `Vfs` it is
 * given and exchanges only plain data (paths, key bounds, table metadata), so
 * the same code runs inline on the engine's thread (MemVfs, crash tests) or
 * in a worker thread with its own NodeVfs (job.ts, background-worker.ts).
 *
 * These functions write and sync table files; they do not change the tree.
 * The engine opens the tables they return and installs them with
 * `VersionSet.logAndApply`, which makes them durable (manifest) and visible.
 * On failure they delete what they wrote, best effort (leftovers are orphans
 * the next open deletes).
 */
import { assert } from '../../util/assert.js';
import { type Vfs, joinPath } from '../../vfs/vfs.js';
import { BlockCache } from './block-cache.js';
import { Cursor } from './coding.js';
import { type TableMeta, tableFileName } from './manifest.js';
import { mergeAll } from './merge.js';
import type { LsmTuning } from './options.js';
import { LevelSource, type SortedSource, TableSource } from './sources.js';
import { TableBuilder, TableReader } from './table.js';

/** What a job needs: where to write, how to build tables, and a source of fresh file numbers. */
export interface JobEnvironment {
  readonly vfs: Vfs;
  readonly dir: string;
  readonly tuning: Pick<LsmTuning, 'blockBytes' | 'restartInterval' | 'bloomBitsPerKey' | 'tableTargetBytes'>;
  allocateFileNumber(): number | Promise<number>;
}

/** A table a compaction reads: its file and key bounds. */
export interface TableRef {
  readonly fileNumber: number;
  readonly path: string;
  readonly sizeBytes: number;
  readonly smallest: Buffer;
  readonly largest: Buffer;
}

/** Key bounds of a table in a level below the compaction's output. */
export interface KeyBounds {
  readonly smallest: Buffer;
  readonly largest: Buffer;
}

/** Merge `inputs` of `level` with `overlapping` tables of `level + 1`; `deeper` are the levels below that (for dropping tombstones). */
export interface CompactionInput {
  readonly level: number;
  readonly inputs: readonly TableRef[];
  readonly overlapping: readonly TableRef[];
  readonly deeper: ReadonlyArray<readonly KeyBounds[]>;
}

/**
 * Writes the entries of a frozen memtable (job.ts `encodeMemtable` format:
 * one entry per key, distinct keys in any order, tombstones included) as one
 * table, in key order. At least one entry.
 */
export async function flushEntries(env: JobEnvironment, entries: Buffer): Promise<TableMeta> {
  const builder = newTableBuilder(env);
  for (const entry of entriesInKeyOrder(entries)) builder.add(entry.key, entry.value);
  return writeTable(env, builder);
}

/**
 * The entries of an `encodeMemtable` buffer sorted by key. The keys are
 * sorted as latin1 strings with the default `sort()` (native comparisons, no
 * comparator call; latin1 string order is unsigned byte order), then mapped
 * back to their entries.
 */
function entriesInKeyOrder(entries: Buffer): Array<{ key: Buffer; value: Buffer | null }> {
  const cursor = new Cursor(entries, 4, entries.length, 'memtable entries');
  const count = entries.readUInt32LE(0);
  const byKey = new Map<string, { key: Buffer; value: Buffer | null }>();
  const keys: string[] = []; // packed, not holey (`new Array(n)`): sorting a holey array takes a slow path
  for (let i = 0; i < count; i++) {
    const key = cursor.bytes(cursor.varint());
    const tag = cursor.varint();
    const keyString = key.toString('latin1');
    keys.push(keyString);
    byKey.set(keyString, { key, value: tag === 0 ? null : cursor.bytes(tag - 1) });
  }
  assert(byKey.size === count, 'memtable entries: duplicate keys in a flush', count, byKey.size);
  keys.sort();
  return keys.map((key) => byKey.get(key)!);
}

/**
 * Merges the compaction's inputs with the overlapping tables of the next
 * level into new tables of about `tableTargetBytes` each, newest version of
 * each key only; a tombstone is dropped when no deeper table may hold the key
 * (nothing older can resurface). Inputs are read sequentially with
 * read-ahead, bypassing the block cache.
 */
export async function compactTables(env: JobEnvironment, compaction: CompactionInput): Promise<TableMeta[]> {
  const cache = new BlockCache(0); // reads bypass it: compaction must not evict the hot set
  const opened: TableReader[] = [];
  const open = async (ref: TableRef): Promise<{ reader: TableReader; largest: Buffer }> => {
    const reader = await TableReader.open(env.vfs, ref.path, ref.fileNumber, cache);
    opened.push(reader);
    return { reader, largest: ref.largest };
  };
  const outputs: TableMeta[] = [];
  try {
    const inputs: Array<{ reader: TableReader; largest: Buffer }> = [];
    for (const ref of compaction.inputs) inputs.push(await open(ref));
    const overlapping: Array<{ reader: TableReader; largest: Buffer }> = [];
    for (const ref of compaction.overlapping) overlapping.push(await open(ref));
    // Newest first: level-0 tables (already newest first), then the older level as one source.
    const sources: SortedSource[] = [];
    if (compaction.level === 0) for (const { reader } of inputs) sources.push(new TableSource(reader, false));
    else sources.push(new LevelSource(inputs, false));
    sources.push(new LevelSource(overlapping, false));
    const deeperPositions = compaction.deeper.map(() => 0);
    let builder = newTableBuilder(env);
    await mergeAll(sources, (key, value) => {
      if (value === null && isBottomForKey(compaction.deeper, deeperPositions, key)) return undefined;
      builder.add(key, value);
      if (builder.estimatedBytes < env.tuning.tableTargetBytes) return undefined;
      const full = builder;
      builder = newTableBuilder(env);
      return writeTable(env, full).then((table) => {
        outputs.push(table);
      });
    });
    if (!builder.empty) outputs.push(await writeTable(env, builder));
    return outputs;
  } catch (error) {
    await deleteTableFiles(env, outputs);
    throw error;
  } finally {
    for (const reader of opened) await reader.close().catch(() => undefined);
  }
}

/** Deletes the files of tables no version lists (a failed job's outputs), best effort: the space matters when the job failed for want of it. */
export async function deleteTableFiles(env: Pick<JobEnvironment, 'vfs' | 'dir'>, tables: ReadonlyArray<{ readonly fileNumber: number }>): Promise<void> {
  for (const table of tables) await env.vfs.unlink(joinPath(env.dir, tableFileName(table.fileNumber))).catch(() => undefined);
}

function newTableBuilder(env: JobEnvironment): TableBuilder {
  const { blockBytes, restartInterval, bloomBitsPerKey } = env.tuning;
  return new TableBuilder({ blockBytes, restartInterval, bloomBitsPerKey });
}

/** Writes and syncs a finished table. Its name becomes durable with the directory sync before the manifest that lists it (`VersionSet.logAndApply`). */
async function writeTable(env: JobEnvironment, builder: TableBuilder): Promise<TableMeta> {
  const { image, smallest, largest, entryCount } = builder.finish();
  const fileNumber = await env.allocateFileNumber();
  const path = joinPath(env.dir, tableFileName(fileNumber));
  const file = await env.vfs.open(path, { create: true, truncate: true });
  try {
    try {
      await file.write(0, image);
      await file.sync();
    } finally {
      await file.close();
    }
  } catch (error) {
    await env.vfs.unlink(path).catch(() => undefined);
    throw error;
  }
  return { fileNumber, sizeBytes: image.length, entryCount, smallest, largest };
}

/**
 * True when no table in `deeper` levels may hold `key`. `positions` are
 * per-level cursors that only move forward: keys arrive in ascending order.
 */
function isBottomForKey(deeper: ReadonlyArray<readonly KeyBounds[]>, positions: number[], key: Buffer): boolean {
  for (let level = 0; level < deeper.length; level++) {
    const tables = deeper[level]!;
    let position = positions[level]!;
    while (position < tables.length && Buffer.compare(tables[position]!.largest, key) < 0) position++;
    positions[level] = position;
    if (position < tables.length && Buffer.compare(tables[position]!.smallest, key) <= 0) return false;
  }
  return true;
}

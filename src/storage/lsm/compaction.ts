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
import { type Vfs, joinPath } from '../../vfs/vfs.js';
import { BlockCache } from './block-cache.js';
import { Cursor } from './coding.js';
import { type TableMeta, tableFileName } from './manifest.js';
import { radixSortKeys } from './key-sort.js';
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
 * table, in key order (sorted here, by key-sort.ts, in the flush worker when
 * there is one). At least one entry.
 */
export async function flushEntries(env: JobEnvironment, entries: Buffer): Promise<TableMeta> {
  const builder = newTableBuilder(env);
  const parsed = parseMemtableEntries(entries);
  // Distinct keys (the memtable's hash index): TableBuilder.add asserts they come out strictly increasing.
  for (const index of radixSortKeys(entries, parsed.keyStarts, parsed.keyLengths)) {
    const keyStart = parsed.keyStarts[index]!;
    const valueStart = parsed.valueStarts[index]!;
    builder.addRanges(entries, keyStart, keyStart + parsed.keyLengths[index]!, valueStart < 0 ? null : entries, valueStart, valueStart + parsed.valueLengths[index]!);
  }
  return writeTable(env, builder);
}

/** Where each entry of an `encodeMemtable` buffer lies in it (`valueStarts[i]` is -1 for a tombstone). */
function parseMemtableEntries(entries: Buffer): { keyStarts: Int32Array; keyLengths: Int32Array; valueStarts: Int32Array; valueLengths: Int32Array } {
  const cursor = new Cursor(entries, 4, entries.length, 'memtable entries');
  const count = entries.readUInt32LE(0);
  const keyStarts = new Int32Array(count);
  const keyLengths = new Int32Array(count);
  const valueStarts = new Int32Array(count);
  const valueLengths = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const keyLength = cursor.varint();
    keyStarts[i] = cursor.position;
    keyLengths[i] = keyLength;
    cursor.bytes(keyLength);
    const tag = cursor.varint();
    valueStarts[i] = tag === 0 ? -1 : cursor.position;
    valueLengths[i] = tag === 0 ? 0 : tag - 1;
    if (tag !== 0) cursor.bytes(tag - 1);
  }
  return { keyStarts, keyLengths, valueStarts, valueLengths };
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

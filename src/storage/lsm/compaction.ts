/**
 * The background work itself: flushing a frozen memtable into a table, and
 * merging a compaction's input tables into new tables for the next level.
 * These functions write and sync table files and return them opened; they do
 * not change the tree. The caller installs the result with
 * `VersionSet.logAndApply`, which makes it durable (manifest) and visible.
 */
import { type Vfs, joinPath } from '../../vfs/vfs.js';
import type { BlockCache } from './block-cache.js';
import type { Compaction } from './compaction-picker.js';
import { tableFileName } from './manifest.js';
import type { Memtable } from './memtable.js';
import { mergeAll } from './merge.js';
import type { LsmTuning } from './options.js';
import { LevelSource, type SortedSource, TableSource } from './sources.js';
import { TableBuilder, TableReader } from './table.js';
import { Table } from './version.js';

/** What a job needs: where to write, how to build tables, and a source of fresh file numbers. */
export interface JobEnvironment {
  readonly vfs: Vfs;
  readonly dir: string;
  readonly cache: BlockCache;
  readonly tuning: Pick<LsmTuning, 'blockBytes' | 'restartInterval' | 'bloomBitsPerKey' | 'tableTargetBytes'>;
  allocateFileNumber(): number;
}

/** Writes `memtable` (newest version of every key, tombstones included) as one table; undefined when it is empty. */
export async function flushMemtable(env: JobEnvironment, memtable: Memtable): Promise<Table | undefined> {
  if (memtable.entryCount === 0) return undefined;
  const builder = newTableBuilder(env);
  for (let node = memtable.first(); node !== undefined; node = node.next[0]) {
    builder.add(Buffer.from(node.key, 'latin1'), node.value);
  }
  return writeTable(env, builder);
}

/**
 * Merges the compaction's inputs with the overlapping tables of the next
 * level into new tables of at most about `tableTargetBytes` each. `deeper`
 * are the levels below the output level: a tombstone is dropped only when
 * none of their tables may hold the key (nothing older can resurface).
 * Inputs are read with read-ahead and do not fill the block cache.
 */
export async function compactTables(env: JobEnvironment, compaction: Compaction, deeper: ReadonlyArray<readonly Table[]>): Promise<Table[]> {
  const { level, inputs, overlapping } = compaction;
  const outputs: Table[] = [];
  try {
    // Newest first: level-0 tables (already newest first), then the older level as one source.
    const sources: SortedSource[] = [];
    if (level === 0) for (const table of inputs) sources.push(new TableSource(table.reader, false));
    else sources.push(new LevelSource(inputs, false));
    sources.push(new LevelSource(overlapping, false));
    const deeperPositions = deeper.map(() => 0);
    let builder = newTableBuilder(env);
    await mergeAll(sources, (key, value) => {
      if (value === null && isBottomForKey(deeper, deeperPositions, key)) return undefined;
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
    await discardTables(env, outputs);
    throw error;
  }
}

/**
 * Closes and deletes tables no version lists (the outputs of a job that
 * failed), best effort: the space matters when the job failed for want of it,
 * and whatever is left is an orphan the next open deletes.
 */
export async function discardTables(env: JobEnvironment, tables: readonly Table[]): Promise<void> {
  for (const table of tables) {
    await table.reader.close().catch(() => undefined);
    await env.vfs.unlink(table.reader.path).catch(() => undefined);
  }
}

function newTableBuilder(env: JobEnvironment): TableBuilder {
  const { blockBytes, restartInterval, bloomBitsPerKey } = env.tuning;
  return new TableBuilder({ blockBytes, restartInterval, bloomBitsPerKey });
}

/** Writes and syncs a finished table and opens it. Its name becomes durable with the next manifest's directory sync. */
async function writeTable(env: JobEnvironment, builder: TableBuilder): Promise<Table> {
  const { image, smallest, largest, entryCount } = builder.finish();
  const fileNumber = env.allocateFileNumber();
  const path = joinPath(env.dir, tableFileName(fileNumber));
  const file = await env.vfs.open(path, { create: true, truncate: true });
  let reader: TableReader;
  try {
    try {
      await file.write(0, image);
      await file.sync();
    } finally {
      await file.close();
    }
    reader = await TableReader.open(env.vfs, path, fileNumber, env.cache);
  } catch (error) {
    await env.vfs.unlink(path).catch(() => undefined);
    throw error;
  }
  return new Table({ fileNumber, sizeBytes: image.length, entryCount, smallest, largest }, reader);
}

/**
 * True when no table in `deeper` levels may hold `key`. `positions` are
 * per-level cursors that only move forward: keys arrive in ascending order.
 */
function isBottomForKey(deeper: ReadonlyArray<readonly Table[]>, positions: number[], key: Buffer): boolean {
  for (let level = 0; level < deeper.length; level++) {
    const tables = deeper[level]!;
    let position = positions[level]!;
    while (position < tables.length && Buffer.compare(tables[position]!.largest, key) < 0) position++;
    positions[level] = position;
    if (position < tables.length && Buffer.compare(tables[position]!.smallest, key) <= 0) return false;
  }
  return true;
}

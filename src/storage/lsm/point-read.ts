/**
 * Point reads from the tables of a version: level-0 tables newest first,
 * then at most one table per deeper level (binary search on key ranges).
 * A table is skipped when its key range or Bloom filter rules the key out.
 *
 * `getFromTables` runs synchronously while the blocks it needs are cached (or
 * can be read with `readSync`); the first block that must be read
 * asynchronously hands over to `getSlow`, which pins the version across its
 * awaits (or, for `getSync`, ends the lookup with READ_NOT_SYNC).
 */
import { partitionPoint } from '../../util/bytes.js';
import { READ_NOT_SYNC, type SyncRead } from '../engine.js';
import { bloomHashes } from './bloom.js';
import { TABLE_MISS, TABLE_TOMBSTONE } from './table.js';
import type { Table, Version, VersionSet } from './version.js';

/** Scratch a caller reuses across lookups (never held across an await). */
export interface LookupScratch {
  readonly hashes: Uint32Array;
  readonly found: { value: Buffer | undefined };
}

export function newLookupScratch(): LookupScratch {
  return { hashes: new Uint32Array(2), found: { value: undefined } };
}

/**
 * The value of `key` (given also as its latin1 `keyString`) in `versions.current`:
 * a Buffer, `undefined` when absent or deleted, or — when a block is neither
 * cached nor readable with `readSync` — a Promise that reads it (`mayWait`
 * true) or READ_NOT_SYNC (`mayWait` false: `Engine.getSync`, which must not
 * start work it cannot finish now).
 */
export function getFromTables(versions: VersionSet, key: Buffer, keyString: string, scratch: LookupScratch, mayWait: true): Buffer | undefined | Promise<Buffer | undefined>;
export function getFromTables(versions: VersionSet, key: Buffer, keyString: string, scratch: LookupScratch, mayWait: boolean): SyncRead | Promise<Buffer | undefined>;
export function getFromTables(versions: VersionSet, key: Buffer, keyString: string, scratch: LookupScratch, mayWait: boolean): SyncRead | Promise<Buffer | undefined> {
  const version = versions.current;
  const hashes = scratch.hashes;
  bloomHashes(key, hashes);
  const found = scratch.found;
  const levels = version.levels;
  for (let level = 0; level < levels.length; level++) {
    const tables = levels[level]!;
    const first = firstCandidate(tables, level, keyString);
    const end = endOfCandidates(tables, level, first);
    for (let i = first; i < end; i++) {
      const table = tables[i]!;
      if (!mayHold(table, keyString, hashes)) continue;
      const reader = table.reader;
      const blockIndex = reader.findBlockByString(keyString);
      const block = reader.cachedBlock(blockIndex) ?? reader.readBlockSync(blockIndex);
      if (block === undefined) {
        if (!mayWait) return READ_NOT_SYNC;
        // Slow path: from here on, tables are read with awaits, holding the version.
        return getSlow(versions, version, key, keyString, Uint32Array.from(hashes), level, i);
      }
      const result = reader.searchIn(block, key, found);
      if (result === TABLE_MISS) continue;
      if (result === TABLE_TOMBSTONE) return undefined;
      const value = found.value;
      found.value = undefined;
      return value;
    }
  }
  return undefined;
}

/** `getFromTables` from table `index` of `level` on (that table already passed `mayHold`), reading blocks from disk as needed. */
async function getSlow(versions: VersionSet, version: Version, key: Buffer, keyString: string, hashes: Uint32Array, level: number, index: number): Promise<Buffer | undefined> {
  versions.ref(version);
  try {
    const found: { value: Buffer | undefined } = { value: undefined };
    for (let resume = true; level < version.levels.length; level++, resume = false) {
      const tables = version.levels[level]!;
      const first = resume ? index : firstCandidate(tables, level, keyString);
      const end = endOfCandidates(tables, level, first);
      for (let i = first; i < end; i++) {
        const table = tables[i]!;
        if (!(resume && i === index) && !mayHold(table, keyString, hashes)) continue;
        const block = await table.reader.block(table.reader.findBlockByString(keyString));
        const result = table.reader.searchIn(block, key, found);
        if (result === TABLE_MISS) continue;
        return result === TABLE_TOMBSTONE ? undefined : found.value;
      }
    }
    return undefined;
  } finally {
    versions.unref(version);
  }
}

/** The first table of `level` that may hold the key: level 0's tables all may (they overlap; newest first); deeper, the one whose range reaches it. */
function firstCandidate(tables: readonly Table[], level: number, keyString: string): number {
  return level === 0 ? 0 : partitionPoint(0, tables.length, (index) => tables[index]!.largestString >= keyString);
}

/** One past the last candidate: the rest of level 0, at most one table deeper. */
function endOfCandidates(tables: readonly Table[], level: number, first: number): number {
  return level === 0 ? tables.length : Math.min(first + 1, tables.length);
}

/** The table's key range covers the key (latin1 strings compare in byte order) and its Bloom filter does not rule it out. */
function mayHold(table: Table, keyString: string, hashes: Uint32Array): boolean {
  if (keyString < table.smallestString || keyString > table.largestString) return false;
  return table.reader.mayContain(hashes);
}

/**
 * Point reads from the tables of a version: level-0 tables newest first,
 * then at most one table per deeper level (binary search on key ranges).
 * A table is skipped when its key range or Bloom filter rules the key out.
 *
 * `getFromTables` runs synchronously while the blocks it needs are cached (or
 * can be read with `readSync`); the first block that must be read
 * asynchronously hands over to `getSlow`, which pins the version across its
 * awaits.
 */
import { partitionPoint } from '../../util/bytes.js';
import { bloomHashes } from './bloom.js';
import { TABLE_MISS, TABLE_TOMBSTONE } from './table.js';
import { type Table, type Version, type VersionSet, findTable } from './version.js';

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
 * a Buffer, `undefined` when absent or deleted, or a Promise when a block had
 * to be read asynchronously.
 */
export function getFromTables(versions: VersionSet, key: Buffer, keyString: string, scratch: LookupScratch): Buffer | undefined | Promise<Buffer | undefined> {
  const version = versions.current;
  const hashes = scratch.hashes;
  bloomHashes(key, hashes);
  const found = scratch.found;
  const levels = version.levels;
  for (let level = 0; level < levels.length; level++) {
    const tables = levels[level]!;
    if (tables.length === 0) continue;
    let first: number;
    let last: number;
    if (level === 0) {
      first = 0;
      last = tables.length - 1;
    } else {
      first = findTableByString(tables, keyString);
      last = first;
      if (first >= tables.length) continue;
    }
    for (let i = first; i <= last; i++) {
      const table = tables[i]!;
      if (keyString < table.smallestString || keyString > table.largestString) continue;
      const reader = table.reader;
      if (!reader.mayContain(hashes)) continue;
      const blockIndex = reader.findBlockByString(keyString);
      const block = reader.cachedBlock(blockIndex) ?? reader.readBlockSync(blockIndex);
      if (block === undefined) {
        // Slow path: from here on, tables are read with awaits, holding the version.
        return getSlow(versions, version, key, Uint32Array.from(hashes), level, i);
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

/** `getFromTables` from table `index` of `level` on, reading blocks from disk as needed. */
async function getSlow(versions: VersionSet, version: Version, key: Buffer, hashes: Uint32Array, level: number, index: number): Promise<Buffer | undefined> {
  versions.ref(version);
  try {
    const found: { value: Buffer | undefined } = { value: undefined };
    // The table at (level, index) already passed its range and Bloom checks.
    let skipChecks = true;
    for (; level < version.levels.length; level++) {
      const tables = version.levels[level]!;
      let first = index;
      let last = index;
      if (index < 0) {
        if (level === 0) {
          first = 0;
          last = tables.length - 1;
        } else {
          first = findTable(tables, key);
          last = first;
        }
      }
      index = -1;
      for (let i = first; i <= last && i < tables.length; i++) {
        const table = tables[i]!;
        if (!skipChecks) {
          if (Buffer.compare(key, table.smallest) < 0 || Buffer.compare(key, table.largest) > 0) continue;
          if (!table.reader.mayContain(hashes)) continue;
        }
        skipChecks = false;
        const block = await table.reader.block(table.reader.findBlock(key));
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

/** `findTable` for a key given as a latin1 string (string `<` is byte order, and cheaper than a native compare). */
function findTableByString(tables: readonly Table[], key: string): number {
  return partitionPoint(0, tables.length, (index) => tables[index]!.largestString >= key);
}

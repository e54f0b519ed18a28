/**
 * The tree's structural invariants, checked by reading everything: for tests
 * (`LsmEngine.checkLevels()`), never on a production path.
 */
import { assert } from '../../util/assert.js';
import { type Vfs, joinPath } from '../../vfs/vfs.js';
import { MANIFEST_NAME, decodeManifest, tableFileName } from './manifest.js';
import { TableIterator } from './table.js';
import type { Table, Version } from './version.js';

/**
 * Throws AssertionError on the first violation: every table's keys strictly
 * ascending and within its recorded smallest/largest and entry count; level 0
 * newest first; deeper levels sorted without overlap; every listed table file
 * present with its recorded size; the manifest in `dir` equal to `version`
 * and to `logNumber`. The caller keeps `version` pinned while this runs.
 */
export async function checkLevels(vfs: Vfs, dir: string, version: Version, logNumber: number): Promise<void> {
  const levels = version.levels;
  for (let i = 1; i < levels[0]!.length; i++) {
    assert(levels[0]![i - 1]!.fileNumber > levels[0]![i]!.fileNumber, 'level 0 is not newest first', i);
  }
  for (let level = 1; level < levels.length; level++) {
    const tables = levels[level]!;
    for (let i = 1; i < tables.length; i++) {
      assert(Buffer.compare(tables[i - 1]!.largest, tables[i]!.smallest) < 0, 'tables overlap within a level', level, tables[i - 1]!.fileNumber, tables[i]!.fileNumber);
    }
  }
  const names = new Set(await vfs.list(dir));
  for (let level = 0; level < levels.length; level++) {
    for (const table of levels[level]!) {
      const name = tableFileName(table.fileNumber);
      assert(names.has(name), 'table file missing', name);
      assert((await vfs.size(joinPath(dir, name))) === table.sizeBytes, 'table file size differs from the manifest', name);
      await checkTable(table, name);
    }
  }
  const path = joinPath(dir, MANIFEST_NAME);
  const onDisk = decodeManifest(await vfs.readFile(path), path);
  assert(onDisk.logNumber === logNumber, 'manifest log number differs', onDisk.logNumber, logNumber);
  for (let level = 0; level < levels.length; level++) {
    const expected = levels[level]!.map((table) => table.fileNumber).join(',');
    const actual = (onDisk.levels[level] ?? []).map((table) => table.fileNumber).join(',');
    assert(expected === actual, 'manifest differs from the current version', level, expected, actual);
  }
}

/** One table's keys: strictly ascending, first and last equal to the recorded bounds, count equal to the recorded one. */
async function checkTable(table: Table, name: string): Promise<void> {
  assert(Buffer.compare(table.smallest, table.largest) <= 0, 'table smallest > largest', name);
  const iterator = new TableIterator(table.reader, false);
  let step = iterator.seekFirst();
  if (step !== undefined) await step;
  let previous: Buffer | undefined;
  let count = 0;
  while (iterator.valid) {
    const key = iterator.key;
    if (previous === undefined) assert(key.equals(table.smallest), 'first key differs from the recorded smallest', name);
    else assert(Buffer.compare(previous, key) < 0, 'keys out of order in table', name, previous, key);
    previous = Buffer.from(key); // the iterator's key is a view, reused as it moves on
    count++;
    step = iterator.next();
    if (step !== undefined) await step;
  }
  assert(previous !== undefined && previous.equals(table.largest), 'last key differs from the recorded largest', name);
  assert(count === table.entryCount, 'entry count differs from the manifest', name, count, table.entryCount);
}

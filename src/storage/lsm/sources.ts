/**
 * Sorted sources the merging scan and compaction read from: a memtable at a
 * snapshot, one table, or a level of non-overlapping tables. They share one
 * cursor interface whose positioning methods return a Promise only when a
 * block had to come from disk, so scans over cached data never await.
 */
import type { ChunkCursor } from '../../util/sorted-chunks.js';
import type { Memtable, MemNode } from './memtable.js';
import { visibleVersion } from './memtable.js';
import { TableIterator, type TableReader } from './table.js';
import { findTable } from './version.js';

export type Step = Promise<void> | undefined;

export interface SortedSource {
  readonly valid: boolean;
  /** Current key. Only when valid. A view, valid until this source moves: copy it to keep it. */
  readonly key: Buffer;
  /** Current value, or null for a tombstone. May be a view into shared memory: copy before handing out. */
  readonly value: Buffer | null;
  seekFirst(): Step;
  seekLast(): Step;
  /** First key >= `key` (> when exclusive). */
  seekGE(key: Buffer, exclusive: boolean): Step;
  /** Last key <= `key` (< when exclusive). */
  seekLE(key: Buffer, exclusive: boolean): Step;
  next(): Step;
  prev(): Step;
}

/** A memtable as of `snapshotSeq`: later versions (and keys first written later) are invisible. */
export class MemtableSource implements SortedSource {
  private readonly cursor: ChunkCursor<MemNode>;
  valid = false;
  key: Buffer = Buffer.alloc(0);
  value: Buffer | null = null;

  constructor(
    memtable: Memtable,
    private readonly snapshotSeq: number,
  ) {
    this.cursor = memtable.cursor();
  }

  seekFirst(): Step {
    this.cursor.seekGE(undefined);
    this.settleForward();
    return undefined;
  }

  seekLast(): Step {
    this.cursor.seekLE(undefined);
    this.settleBackward();
    return undefined;
  }

  seekGE(key: Buffer, exclusive: boolean): Step {
    this.cursor.seekGE(key.toString('latin1'), exclusive);
    this.settleForward();
    return undefined;
  }

  seekLE(key: Buffer, exclusive: boolean): Step {
    this.cursor.seekLE(key.toString('latin1'), exclusive);
    this.settleBackward();
    return undefined;
  }

  next(): Step {
    this.cursor.next();
    this.settleForward();
    return undefined;
  }

  prev(): Step {
    this.cursor.prev();
    this.settleBackward();
    return undefined;
  }

  private settleForward(): void {
    for (let node = this.cursor.node; node !== undefined; node = this.cursor.next()) {
      const version = visibleVersion(node, this.snapshotSeq);
      if (version !== undefined) return this.expose(node, version.value);
    }
    this.valid = false;
  }

  private settleBackward(): void {
    for (let node = this.cursor.node; node !== undefined; node = this.cursor.prev()) {
      const version = visibleVersion(node, this.snapshotSeq);
      if (version !== undefined) return this.expose(node, version.value);
    }
    this.valid = false;
  }

  private expose(node: MemNode, value: Buffer | null): void {
    this.key = Buffer.from(node.key, 'latin1');
    this.value = value;
    this.valid = true;
  }
}

/** One table. */
export class TableSource extends TableIterator implements SortedSource {}

/** A level of tables sorted by key with no overlap (levels >= 1), read as one source. */
export class LevelSource implements SortedSource {
  private index = -1;
  private iterator: TableIterator | undefined;
  valid = false;

  constructor(
    private readonly tables: ReadonlyArray<{ readonly reader: TableReader; readonly largest: Buffer }>,
    private readonly fillCache: boolean,
  ) {}

  get key(): Buffer {
    return this.iterator!.key;
  }

  get value(): Buffer | null {
    return this.iterator!.value;
  }

  seekFirst(): Step {
    return this.enter(0, (it) => it.seekFirst(), true);
  }

  seekLast(): Step {
    return this.enter(this.tables.length - 1, (it) => it.seekLast(), false);
  }

  seekGE(key: Buffer, exclusive: boolean): Step {
    return this.enter(findTable(this.tables, key), (it) => it.seekGE(key, exclusive), true);
  }

  seekLE(key: Buffer, exclusive: boolean): Step {
    // The first table whose largest key is >= key holds the answer, or its predecessor does (enter moves back).
    return this.enter(Math.min(findTable(this.tables, key), this.tables.length - 1), (it) => it.seekLE(key, exclusive), false);
  }

  next(): Step {
    return this.after(this.iterator!.next(), true);
  }

  prev(): Step {
    return this.after(this.iterator!.prev(), false);
  }

  /** Positions in table `index` with `position`, moving on to neighbours while the table has nothing there. */
  private enter(index: number, position: (it: TableIterator) => Step, forward: boolean): Step {
    if (index < 0 || index >= this.tables.length) {
      this.valid = false;
      this.iterator = undefined;
      return undefined;
    }
    this.index = index;
    this.iterator = new TableIterator(this.tables[index]!.reader, this.fillCache);
    return this.after(position(this.iterator), forward);
  }

  private after(step: Step, forward: boolean): Step {
    if (step !== undefined) return step.then(() => this.after(undefined, forward));
    if (this.iterator!.valid) {
      this.valid = true;
      return undefined;
    }
    return forward ? this.enter(this.index + 1, (it) => it.seekFirst(), true) : this.enter(this.index - 1, (it) => it.seekLast(), false);
  }
}

/**
 * The memtable: the newest version(s) of recently written keys. A hash index
 * (`Map`, keys as latin1 strings) answers point reads and finds the node an
 * overwrite replaces; key order is kept by the shared ordered structure
 * (src/util/sorted-chunks.ts), whose JS string order on latin1 keys is
 * exactly unsigned byte order.
 *
 * Ordering is deferred: a new key goes to the hash index and a `pending`
 * list, and is sorted in only when something reads in key order (a scan's
 * cursor, a flush). A burst of writes with no scan in between therefore costs
 * one hash insert per key, and sorting many keys at once uses the native
 * string sort (`inKeyOrder`).
 *
 * Versions and snapshots: every write carries a sequence number. A range scan
 * takes a snapshot (a sequence number) and must not see later writes, even
 * though it runs across awaits while writes continue. So while any snapshot is
 * open, an overwrite keeps the previous version chained behind the new one
 * (`older`), pruned down to what the oldest open snapshot can still see. With
 * no snapshot open an overwrite replaces in place: the common case costs no
 * allocation beyond the value copy. Nodes are never removed (a delete is a
 * tombstone version).
 */
import { assert } from '../../util/assert.js';
import { ChunkCursor, SortedChunks } from '../../util/sorted-chunks.js';

/** Rough bytes of a node and its index entries, beyond key and value. */
const NODE_OVERHEAD_BYTES = 120;

/** One version of a key. `value === null` is a tombstone. */
export interface MemVersion {
  seq: number;
  value: Buffer | null;
  older: MemVersion | undefined;
}

/**
 * A key's node. It carries the key's newest version itself (`seq`, `value`),
 * with older versions chained behind it only while snapshots need them: one
 * object per key in the common case.
 */
export interface MemNode extends MemVersion {
  readonly key: string;
}

export class Memtable {
  /** Every node by key: point lookups and overwrites in O(1). Reads check the memtable first, so this is on every get's path. */
  private readonly index = new Map<string, MemNode>();
  /** Nodes of keys first written since the last ordered read (any order), not yet in `ordered`. */
  private pending: MemNode[] = [];
  private readonly ordered = new SortedChunks<MemNode>();
  /** Approximate bytes held: keys, values and per-node overhead. */
  approximateBytes = 0;

  /** Distinct keys held (a deleted key counts: its tombstone is an entry). */
  get entryCount(): number {
    return this.index.size;
  }

  /**
   * Inserts or replaces the newest version of `key`. `oldestSnapshotSeq` is the
   * sequence number of the oldest open snapshot, or Infinity when none is open.
   */
  put(key: string, value: Buffer | null, seq: number, oldestSnapshotSeq: number): void {
    const existing = this.index.get(key);
    if (existing !== undefined) {
      this.replace(existing, value, seq, oldestSnapshotSeq);
      return;
    }
    const node: MemNode = { key, seq, value, older: undefined };
    this.index.set(key, node);
    this.pending.push(node);
    this.approximateBytes += key.length + (value?.length ?? 0) + NODE_OVERHEAD_BYTES;
  }

  /** Makes `value` the newest version of an existing node. */
  private replace(node: MemNode, value: Buffer | null, seq: number, oldestSnapshotSeq: number): void {
    // Versions are chained newest first; an older write arriving later would be shadowed by the one it should replace.
    if (seq <= node.seq) assert(false, 'memtable: sequence numbers must increase per key', node.seq, seq);
    this.approximateBytes += (value?.length ?? 0) - (node.value?.length ?? 0);
    if (oldestSnapshotSeq === Infinity) {
      node.older = undefined;
    } else {
      // Chain the current version behind the new one, keeping versions down to the
      // newest one the oldest snapshot can see and dropping the rest.
      const previous: MemVersion = { seq: node.seq, value: node.value, older: node.older };
      let keep: MemVersion | undefined = previous;
      while (keep !== undefined && keep.seq > oldestSnapshotSeq) keep = keep.older;
      if (keep !== undefined) keep.older = undefined;
      node.older = previous;
      this.approximateBytes += NODE_OVERHEAD_BYTES / 2;
    }
    node.seq = seq;
    node.value = value;
  }

  /** The newest version of `key`, or undefined when the memtable has none. */
  get(key: string): MemVersion | undefined {
    return this.index.get(key);
  }

  /** A cursor over every node in key order (sorts in the keys written since the last one). */
  cursor(): ChunkCursor<MemNode> {
    if (this.pending.length > 0) {
      this.ordered.insertAll(this.inKeyOrder(this.pending.map((node) => node.key)), true);
      this.pending = [];
    }
    return new ChunkCursor(this.ordered);
  }

  /**
   * Every node, in no particular order (for a flush: the memtable is frozen;
   * the flush job sorts them, off the event loop when it runs in a worker).
   */
  nodes(): IterableIterator<MemNode> {
    return this.index.values();
  }

  /**
   * The nodes of `keys` in key order. Sorting the key strings with the
   * default `sort()` compares them natively, with no comparator call per
   * comparison (measured several times faster than sorting nodes or Buffers
   * with a comparator); the hash index then gives each key's node.
   */
  private inKeyOrder(keys: string[]): MemNode[] {
    keys.sort();
    return keys.map((key) => this.index.get(key)!);
  }
}

/** The version of `node` a snapshot at `snapshotSeq` sees, or undefined when the key is newer than it. */
export function visibleVersion(node: MemNode, snapshotSeq: number): MemVersion | undefined {
  let version: MemVersion | undefined = node;
  while (version !== undefined && version.seq > snapshotSeq) version = version.older;
  return version;
}

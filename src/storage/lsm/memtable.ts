/**
 * The memtable: an ordered in-memory map from key to its newest version(s),
 * on the shared skip list (src/util/skip-list.ts) keyed by latin1 strings
 * (whose JS string order is exactly unsigned byte order), with a hash index
 * beside it for point lookups.
 *
 * Versions and snapshots: every write carries a sequence number. A range scan
 * takes a snapshot (a sequence number) and must not see later writes, even
 * though it runs across awaits while writes continue. So while any snapshot is
 * open, an overwrite keeps the previous version chained behind the new one
 * (`older`), pruned down to what the oldest open snapshot can still see. With
 * no snapshot open an overwrite replaces in place: the common case costs no
 * allocation beyond the value copy. Nodes are never removed (a delete is a
 * tombstone version), so a scan's node pointer stays valid across inserts.
 */
import { assert } from '../../util/assert.js';
import type { Random } from '../../util/random.js';
import { SkipList, type SkipListNode } from '../../util/skip-list.js';

/** Rough bytes of a node, its next array and its hash-index entry, beyond key and value. */
const NODE_OVERHEAD_BYTES = 120;

/** One version of a key. `value === null` is a tombstone. */
export interface MemVersion {
  seq: number;
  value: Buffer | null;
  older: MemVersion | undefined;
}

/**
 * A skip-list node. It carries the key's newest version itself (`seq`,
 * `value`), with older versions chained behind it only while snapshots need
 * them: one object per key in the common case.
 */
export interface MemNode extends MemVersion, SkipListNode<MemNode> {}

function newMemNode(key: string, height: number): MemNode {
  return { key, seq: 0, value: null, older: undefined, next: new Array<MemNode | undefined>(height), prev: undefined };
}

export class Memtable {
  private readonly list: SkipList<MemNode>;
  /**
   * Hash index over the same nodes: point lookups (and overwrites) in O(1)
   * instead of a skip-list descent. Reads check the memtable first and
   * usually miss, so this is on every get's path.
   */
  private readonly index = new Map<string, MemNode>();
  /** Approximate bytes held: keys, values and per-node overhead. */
  approximateBytes = 0;

  constructor(random: Random) {
    this.list = new SkipList(random, newMemNode);
  }

  /** Distinct keys held (a deleted key counts: its tombstone is an entry). */
  get entryCount(): number {
    return this.list.size;
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
    const created = this.list.getOrInsert(key);
    created.seq = seq;
    created.value = value;
    this.index.set(key, created);
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

  /** First node with key >= `key` (or > when `exclusive`), or the first node when `key` is undefined. */
  seekGE(key: string | undefined, exclusive = false): MemNode | undefined {
    return this.list.seekGE(key, exclusive);
  }

  /** Last node with key <= `key` (or < when `exclusive`), or the last node when `key` is undefined. */
  seekLE(key: string | undefined, exclusive = false): MemNode | undefined {
    return this.list.seekLE(key, exclusive);
  }

  first(): MemNode | undefined {
    return this.list.first();
  }
}

/** The version of `node` a snapshot at `snapshotSeq` sees, or undefined when the key is newer than it. */
export function visibleVersion(node: MemNode, snapshotSeq: number): MemVersion | undefined {
  let version: MemVersion | undefined = node;
  while (version !== undefined && version.seq > snapshotSeq) version = version.older;
  return version;
}

/**
 * The memtable: an ordered in-memory map from key to its newest version(s),
 * a skip list keyed by latin1 strings (whose JS string order is exactly
 * unsigned byte order) with a doubly linked bottom level for reverse scans.
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
import type { Random } from '../../util/random.js';

const LEVELS_MAX = 20;
const PROMOTION_CHANCE = 0.25;
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
export interface MemNode extends MemVersion {
  readonly key: string;
  readonly next: Array<MemNode | undefined>;
  prev: MemNode | undefined;
}

export class Memtable {
  private readonly head: MemNode = { key: '', seq: 0, value: null, older: undefined, next: new Array(LEVELS_MAX).fill(undefined), prev: undefined };
  private tail: MemNode | undefined;
  private level = 1;
  private readonly update: MemNode[] = new Array(LEVELS_MAX);
  /**
   * Hash index over the same nodes: point lookups (and overwrites) in O(1)
   * instead of a skip-list descent. Reads check the memtable first and
   * usually miss, so this is on every get's path.
   */
  private readonly index = new Map<string, MemNode>();
  /** Approximate bytes held: keys, values and per-node overhead. */
  approximateBytes = 0;
  entryCount = 0;

  constructor(private readonly random: Random) {}

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
    let node = this.head;
    for (let i = this.level - 1; i >= 0; i--) {
      let next = node.next[i];
      while (next !== undefined && next.key < key) {
        node = next;
        next = node.next[i];
      }
      this.update[i] = node;
    }
    let height = 1;
    while (height < LEVELS_MAX && this.random.next() < PROMOTION_CHANCE) height++;
    if (height > this.level) {
      for (let i = this.level; i < height; i++) this.update[i] = this.head;
      this.level = height;
    }
    const created: MemNode = { key, seq, value, older: undefined, next: new Array(height), prev: node === this.head ? undefined : node };
    for (let i = 0; i < height; i++) {
      const before = this.update[i]!;
      created.next[i] = before.next[i];
      before.next[i] = created;
    }
    const after = created.next[0];
    if (after !== undefined) after.prev = created;
    else this.tail = created;
    this.index.set(key, created);
    this.entryCount++;
    this.approximateBytes += key.length + (value?.length ?? 0) + NODE_OVERHEAD_BYTES;
  }

  /** Makes `value` the newest version of an existing node. */
  private replace(node: MemNode, value: Buffer | null, seq: number, oldestSnapshotSeq: number): void {
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
    if (key === undefined) return this.head.next[0];
    let node = this.head;
    for (let i = this.level - 1; i >= 0; i--) {
      let next = node.next[i];
      while (next !== undefined && next.key < key) {
        node = next;
        next = node.next[i];
      }
    }
    let found = node.next[0];
    if (exclusive && found !== undefined && found.key === key) found = found.next[0];
    return found;
  }

  /** Last node with key <= `key` (or < when `exclusive`), or the last node when `key` is undefined. */
  seekLE(key: string | undefined, exclusive = false): MemNode | undefined {
    if (key === undefined) return this.tail;
    const atOrAfter = this.seekGE(key);
    if (atOrAfter === undefined) return this.tail;
    if (atOrAfter.key === key && !exclusive) return atOrAfter;
    return atOrAfter.prev;
  }

  first(): MemNode | undefined {
    return this.head.next[0];
  }
}

/** The version of `node` a snapshot at `snapshotSeq` sees, or undefined when the key is newer than it. */
export function visibleVersion(node: MemNode, snapshotSeq: number): MemVersion | undefined {
  let version: MemVersion | undefined = node;
  while (version !== undefined && version.seq > snapshotSeq) version = version.older;
  return version;
}

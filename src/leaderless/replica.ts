/**
 * One node's replica: what it does with the sets it stores, on its
 * `EngineReplicaStore`. The coordinator (coordinator.ts) calls it for this
 * node directly and for other nodes through the peer protocol (messages.ts).
 *
 *   coordinate(key, context, value)  a new write whose dot this replica names; returns the new set
 *   apply(key, set)                  merge a set from elsewhere (replication, read repair, handoff, anti-entropy)
 *   read(key)                        the stored set
 *   storeHint(owner, key, set)       hold a set for an unreachable owner (sloppy quorum)
 *
 * Each of these is read-merge-write of one key and resolves only once the
 * result is durable. Operations on the same key run one after another (a
 * per-key queue): two concurrent merges must not both read the old set and
 * the later write drop the earlier one's sibling. Different keys run
 * concurrently and share the engine's group commit.
 */
import { ImpulseError } from '../errors.js';
import { type NodeId, type SiblingSet, type VersionVector, merge, onlyTombstones, resolveLastWriter, sameDots, update } from './dvv.js';
import { siblingSetBytes, SIBLINGS_MAX } from './codec.js';
import type { ConflictMode } from './config.js';
import type { EngineReplicaStore, StoredSet } from './replica-store.js';
import type { RangeOptions } from '../storage/engine.js';


export interface ReplicaOptions {
  readonly nodeId: NodeId;
  readonly store: EngineReplicaStore;
  readonly conflicts: ConflictMode;
  /** Wall-clock milliseconds for the hybrid logical clock (lww); the only wall clock leaderless mode reads. */
  readonly wallClockMs: () => number;
}

export interface ReplicaFigures {
  writesCoordinated: number;
  setsApplied: number;
  setsChanged: number;
  hintsStored: number;
  tombstonesCollected: number;
}

export class Replica {
  readonly figures: ReplicaFigures = { writesCoordinated: 0, setsApplied: 0, setsChanged: 0, hintsStored: 0, tombstonesCollected: 0 };
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly hlc: HybridClock;
  private readonly listeners: ((key: Buffer, before: SiblingSet, after: SiblingSet) => void)[] = [];

  constructor(private readonly options: ReplicaOptions) {
    this.hlc = new HybridClock(options.wallClockMs);
  }

  /**
   * Calls `listener` after every durable change of a key's stored set (its
   * set before and after; empty when absent), in the key's order. Anti-entropy
   * keeps its hash trees with it. Listeners must not throw.
   */
  onStored(listener: (key: Buffer, before: SiblingSet, after: SiblingSet) => void): void {
    this.listeners.push(listener);
  }

  get nodeId(): NodeId {
    return this.options.nodeId;
  }

  /** Reconciles two sets under this cluster's conflict mode. */
  reconcile(a: SiblingSet, b: SiblingSet): SiblingSet {
    const merged = merge(a, b);
    return this.options.conflicts === 'lww' ? resolveLastWriter(merged) : merged;
  }

  /**
   * A new write of `value` (null: a delete) with the client's `context`,
   * coordinated here: returns the stored set (the new sibling plus the ones
   * the context did not cover). IMPULSE_ERR_SIBLINGS_TOO_MANY when the set
   * would exceed its bounds; nothing is then written.
   */
  coordinate(key: Buffer, context: VersionVector, value: Buffer | null): Promise<SiblingSet> {
    return this.serial(key, async () => {
      const local = await this.options.store.read(key);
      let next = update(local, context, this.options.nodeId, value, this.hlc.next());
      if (this.options.conflicts === 'lww') next = resolveLastWriter(next);
      this.checkBounds(next);
      await this.options.store.write(key, next);
      this.stored(key, local, next);
      this.figures.writesCoordinated++;
      return next;
    });
  }

  /** Merges `incoming` into the stored set; returns the result and whether anything changed. */
  apply(key: Buffer, incoming: SiblingSet): Promise<{ set: SiblingSet; changed: boolean }> {
    return this.serial(key, async () => {
      this.observe(incoming);
      const local = await this.options.store.read(key);
      const next = this.reconcile(local, incoming);
      this.figures.setsApplied++;
      if (sameDots(next, local)) return { set: local, changed: false };
      await this.options.store.write(key, next);
      this.stored(key, local, next);
      this.figures.setsChanged++;
      return { set: next, changed: true };
    });
  }

  /**
   * Collects `key`'s tombstones: removes the stored set if it holds exactly
   * the siblings of `expected` and every one is a tombstone; true when it did.
   * A write that arrived since the collector checked changes the set, and
   * then nothing is removed. Called by the collector (tombstones.ts) only.
   */
  async reap(key: Buffer, expected: SiblingSet): Promise<boolean> {
    const removed = onlyTombstones(expected) && (await this.dropIfUnchanged(key, expected));
    if (removed) this.figures.tombstonesCollected++;
    return removed;
  }

  /**
   * Deletes `key`'s set if it holds exactly the siblings of `expected` (a
   * collected tombstone, or a key handed off to its owners: ownership.ts);
   * true when it did. Anything that arrived since keeps the key.
   */
  dropIfUnchanged(key: Buffer, expected: SiblingSet): Promise<boolean> {
    return this.serial(key, async () => {
      const local = await this.options.store.read(key);
      if (local.length === 0 || !sameDots(local, expected)) return false;
      await this.options.store.deleteData(key);
      this.stored(key, local, []);
      return true;
    });
  }

  read(key: Buffer): Promise<SiblingSet> {
    return this.options.store.read(key);
  }

  /** The stored keys of a range with their sets (range reads, range.ts). */
  scan(bounds: RangeOptions): Promise<StoredSet[]> {
    return this.options.store.scan(bounds);
  }

  /** Holds `set` for `owner` (merged with what is held already), durably. */
  storeHint(owner: NodeId, key: Buffer, set: SiblingSet): Promise<void> {
    return this.serial(`h${owner}:${key.toString('latin1')}`, async () => {
      this.observe(set);
      const held = await this.options.store.readHint(owner, key);
      await this.options.store.writeHint(owner, key, this.reconcile(held, set));
      this.figures.hintsStored++;
    });
  }

  /**
   * After `delivered` reached `owner`: drops the hint if it holds nothing
   * more than what was delivered (a write that arrived meanwhile keeps it).
   */
  retireHint(owner: NodeId, key: Buffer, delivered: SiblingSet): Promise<boolean> {
    return this.serial(`h${owner}:${key.toString('latin1')}`, async () => {
      const held = await this.options.store.readHint(owner, key);
      if (!sameDots(this.reconcile(held, delivered), delivered)) return false;
      await this.options.store.deleteHint(owner, key);
      return true;
    });
  }

  private stored(key: Buffer, before: SiblingSet, after: SiblingSet): void {
    for (const listener of this.listeners) listener(key, before, after);
  }

  private checkBounds(set: SiblingSet): void {
    if (set.length > SIBLINGS_MAX || siblingSetBytes(set) > this.options.store.setBytesMax) {
      throw new ImpulseError('IMPULSE_ERR_SIBLINGS_TOO_MANY', `the key would hold ${set.length} siblings (${siblingSetBytes(set)} bytes); read it and write with its context to resolve them`, {
        details: { siblings: set.length },
      });
    }
  }

  private observe(set: SiblingSet): void {
    for (const sibling of set) this.hlc.observe(sibling.timestamp);
  }

  /** Runs `work` after every earlier operation on the same key has finished. */
  private serial<T>(key: Buffer | string, work: () => Promise<T>): Promise<T> {
    const name = typeof key === 'string' ? key : `d${key.toString('latin1')}`;
    const previous = this.queues.get(name) ?? Promise.resolve();
    const result = previous.then(work, work);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return result;
  }
}

/**
 * A hybrid logical clock (Kulkarni et al.): timestamps are wall-clock
 * microseconds, strictly increasing on this node, and never behind a
 * timestamp it has seen from another node — unless that timestamp is more
 * than `maxOffsetMs` ahead of this node's wall clock (a member with a clock
 * far off, or garbage): then it is not adopted, so one bad clock cannot drag
 * every member's timestamps into the future. Used to order writes for lww.
 */
export class HybridClock {
  private last = 0;

  constructor(
    private readonly wallClockMs: () => number,
    private readonly maxOffsetMs = 60_000,
  ) {}

  next(): number {
    this.last = Math.max(this.last + 1, Math.floor(this.wallClockMs() * 1000));
    return this.last;
  }

  observe(timestamp: number): void {
    if (timestamp > this.last && timestamp <= (this.wallClockMs() + this.maxOffsetMs) * 1000) this.last = timestamp;
  }
}

/**
 * The working state of one placement plan (placement.ts, byte-balance.ts):
 * which live node holds which shards, each node's replica count and bytes,
 * each shard's replicas and size. Mutated as the plan's moves are chosen.
 *
 * A shard's size is its reported size; a shard without one weighs the mean
 * of the known sizes (0 when none is known), so unknown sizes neither
 * attract nor repel moves — and with no sizes at all every shard weighs the
 * same and the plan is the count-only plan.
 */
import type { NodeId } from '../raft/types.js';

export interface SizedShard {
  readonly id: number;
  /** Current replicas (distinct node ids; some may not be live any more). */
  readonly replicas: readonly NodeId[];
  /** Bytes of the shard's keys and values as last reported; absent when unknown. */
  readonly sizeBytes?: number;
  /** Held in place for a merge (alignment.ts): no count or byte balancing move takes it; restoring a lost replica still does. */
  readonly pinned?: boolean;
}

export class Layout {
  /** Live node → the shards it holds. */
  readonly held = new Map<NodeId, Set<number>>();
  /** Live node → the bytes of the shards it holds. */
  readonly bytes = new Map<NodeId, number>();
  /** Shard → its replicas on live nodes. */
  readonly replicas = new Map<number, Set<NodeId>>();
  /** Shard → its weight in bytes (see the file comment). */
  readonly size = new Map<number, number>();
  /** Shards no balancing move takes (`SizedShard.pinned`). */
  readonly pinned = new Set<number>();
  /** Bytes of one replica of every shard (the mean a replica weighs: `totalBytes / shards`). */
  readonly shardBytesTotal: number;

  /** `live`: sorted, distinct. Replicas on nodes not in `live` are left out (lost). */
  constructor(live: readonly NodeId[], shards: readonly SizedShard[]) {
    const known = shards.filter((shard) => shard.sizeBytes !== undefined);
    const unknownWeight = known.length === 0 ? 0 : known.reduce((sum, shard) => sum + shard.sizeBytes!, 0) / known.length;
    for (const id of live) {
      this.held.set(id, new Set());
      this.bytes.set(id, 0);
    }
    let total = 0;
    for (const shard of shards) {
      const weight = shard.sizeBytes ?? unknownWeight;
      this.size.set(shard.id, weight);
      if (shard.pinned === true) this.pinned.add(shard.id);
      total += weight;
      this.replicas.set(shard.id, new Set());
      for (const id of shard.replicas) if (this.held.has(id)) this.add(shard.id, id);
    }
    this.shardBytesTotal = total;
  }

  get nodes(): NodeId[] {
    return [...this.held.keys()];
  }

  count(node: NodeId): number {
    return this.held.get(node)!.size;
  }

  /** Whether `node` may take a replica of `shard` (it has none). */
  allowed(shard: number, node: NodeId): boolean {
    return !this.replicas.get(shard)!.has(node);
  }

  /** Whether a balancing move may give `shard` to `to` (`to` has no replica of it, and the shard is not pinned). */
  movable(shard: number, to: NodeId): boolean {
    return !this.pinned.has(shard) && this.allowed(shard, to);
  }

  /**
   * The shard `donor` holds that `recipient` may take (`movable`) whose size is closest
   * to `targetBytes` (ties: the lowest id), among those whose size `fits`
   * accepts; undefined when there is none.
   */
  closestShard(donor: NodeId, recipient: NodeId, targetBytes: number, fits: (sizeBytes: number) => boolean = () => true): number | undefined {
    let best: { shard: number; miss: number } | undefined;
    for (const shard of this.held.get(donor)!) {
      const size = this.size.get(shard)!;
      if (!fits(size) || !this.movable(shard, recipient)) continue;
      const miss = Math.abs(size - targetBytes);
      if (best === undefined || miss < best.miss || (miss === best.miss && shard < best.shard)) best = { shard, miss };
    }
    return best?.shard;
  }

  add(shard: number, node: NodeId): void {
    this.held.get(node)!.add(shard);
    this.replicas.get(shard)!.add(node);
    this.bytes.set(node, this.bytes.get(node)! + this.size.get(shard)!);
  }

  move(shard: number, from: NodeId, to: NodeId): void {
    this.held.get(from)!.delete(shard);
    this.replicas.get(shard)!.delete(from);
    this.bytes.set(from, this.bytes.get(from)! - this.size.get(shard)!);
    this.add(shard, to);
  }
}

/**
 * The per-key hashes anti-entropy compares (anti-entropy.ts), kept in memory:
 * for every stored key this node owns, its leaf and the SHA-256 of its
 * canonical sibling set, and from them one hash tree per peer (the XOR of the
 * key hashes of the keys this node and that peer both own, per leaf).
 *
 * Why: listing a differing leaf's keys and hashes is then a lookup of that
 * leaf, not a scan of the store, so a repair costs O(differing leaves' keys),
 * not O(keys) per round. Riak AAE keeps the same per-key hashes on disk (its
 * hashtrees); we keep them in memory and rebuild them by one scan of the
 * store at the first exchange after a start or a ring change — the choice
 * and its cost are in docs/leaderless.md ("Anti-entropy"): about 150 bytes
 * plus the key per owned key (15 MB at 100,000 keys of 16 bytes).
 *
 * Consistency with the store: every durable change reaches `noteStored`
 * (Replica.onStored), in each key's order. During the building scan a change
 * updates the index and marks the key, and the scan then leaves marked keys
 * alone (the scan may have read the older set before the change); the trees
 * are computed from the finished index. So the index and the trees equal a
 * fresh scan at every moment after a build (the in-process test checks it).
 */
import { createHash } from 'node:crypto';
import { encodeSiblingSet } from './codec.js';
import type { NodeId, SiblingSet } from './dvv.js';
import type { EngineReplicaStore } from './replica-store.js';
import { type Ring, ringPosition } from './ring.js';

export const HASH_BYTES = 32;
const RING_SIZE = 2 ** 48;
const SCAN_PAGE = 1000;

export interface KeyHashesOptions {
  readonly self: NodeId;
  readonly store: EngineReplicaStore;
  readonly ring: () => Ring;
  readonly replicas: number;
  /** Leaves per tree, ≥ 1. */
  readonly leafCount: number;
}

/** One key of a leaf with the SHA-256 of its stored set. */
export type KeyEntry = [key: Buffer, setHash: Buffer];

interface Built {
  readonly ring: Ring;
  /** Per leaf: key (latin1) → set hash (latin1, 32 chars). */
  readonly leaves: Map<string, string>[];
  /** Per peer: `leafCount` × 32 bytes. */
  readonly trees: Map<NodeId, Buffer>;
}

export class KeyHashes {
  private built: Built | undefined;
  /** The build under way: its index so far and the keys changed since it began. */
  private building: { ring: Ring; leaves: Map<string, string>[]; changed: Set<string>; done: Promise<void> } | undefined;

  constructor(private readonly options: KeyHashesOptions) {}

  /** The tree of the keys this node and `peer` both own under the current ring (built first when missing). */
  async tree(peer: NodeId): Promise<Buffer> {
    const built = await this.current();
    return built.trees.get(peer) ?? Buffer.alloc(this.options.leafCount * HASH_BYTES);
  }

  /** The keys of `leaves` that this node and `peer` both own, with their set hashes (no scan). */
  async entries(peer: NodeId, leaves: readonly number[]): Promise<KeyEntry[]> {
    const built = await this.current();
    const out: KeyEntry[] = [];
    for (const leaf of leaves) {
      for (const [name, hash] of built.leaves[leaf] ?? []) {
        const key = Buffer.from(name, 'latin1');
        if (this.owners(built.ring, ringPosition(key)).includes(peer)) out.push([key, Buffer.from(hash, 'latin1')]);
      }
    }
    return out;
  }

  /** How many owned keys `leaf` holds (0 before the first build): sizes anti-entropy's batches. */
  leafSize(leaf: number): number {
    return this.built?.leaves[leaf]?.size ?? 0;
  }

  /** Keeps the index and trees equal to the store after one durable change (Replica.onStored). */
  noteStored(key: Buffer, after: SiblingSet): void {
    const ring = this.options.ring();
    if (this.building !== undefined && this.building.ring === ring) {
      const name = key.toString('latin1');
      this.building.changed.add(name);
      this.setEntry(this.building.leaves, ring, key, after);
    }
    const built = this.built;
    if (built === undefined) return;
    if (built.ring !== ring) {
      this.built = undefined; // rebuilt for the new ring at the next exchange
      return;
    }
    const position = ringPosition(key);
    const owners = this.owners(ring, position);
    if (!owners.includes(this.options.self)) return;
    const leaf = leafOf(position, this.options.leafCount);
    const held = built.leaves[leaf]!.get(key.toString('latin1'));
    const delta = Buffer.alloc(HASH_BYTES);
    if (held !== undefined) xorInto(delta, 0, keyHash(key, Buffer.from(held, 'latin1')));
    const next = this.setEntry(built.leaves, ring, key, after);
    if (next !== undefined) xorInto(delta, 0, keyHash(key, next));
    for (const owner of owners) {
      const tree = built.trees.get(owner);
      if (tree !== undefined) xorInto(tree, leaf, delta);
    }
  }

  /** The same tree computed by a scan of the store (no maintained state): tests, and a peer asking with another leaf count. */
  async scanTree(peer: NodeId, leafCount: number): Promise<Buffer> {
    const out = Buffer.alloc(leafCount * HASH_BYTES);
    const ring = this.options.ring();
    await this.scanOwned(ring, (key, set) => {
      const position = ringPosition(key);
      if (this.owners(ring, position).includes(peer)) xorInto(out, leafOf(position, leafCount), keyHash(key, setHashOf(set)));
    });
    return out;
  }

  /** The same entries found by a scan of the store: a peer asking with another leaf count. */
  async scanEntries(peer: NodeId, leafCount: number, leaves: readonly number[]): Promise<KeyEntry[]> {
    const wanted = new Set(leaves);
    const out: KeyEntry[] = [];
    const ring = this.options.ring();
    await this.scanOwned(ring, (key, set) => {
      const position = ringPosition(key);
      if (wanted.has(leafOf(position, leafCount)) && this.owners(ring, position).includes(peer)) out.push([key, setHashOf(set)]);
    });
    return out;
  }

  private async current(): Promise<Built> {
    for (;;) {
      const ring = this.options.ring();
      if (this.built?.ring === ring) return this.built;
      if (this.building?.ring !== ring) this.building = this.startBuild(ring);
      await this.building.done;
    }
  }

  private startBuild(ring: Ring): { ring: Ring; leaves: Map<string, string>[]; changed: Set<string>; done: Promise<void> } {
    const leaves = Array.from({ length: this.options.leafCount }, () => new Map<string, string>());
    const changed = new Set<string>();
    const build = { ring, leaves, changed, done: Promise.resolve() };
    build.done = this.scanOwned(ring, (key, set) => {
      if (!changed.has(key.toString('latin1'))) this.setEntry(leaves, ring, key, set);
    })
      // One step: a change seen after `built` is set must update it alone (the building branch of
      // noteStored would record the new hash first and leave the tree's delta empty).
      .then(
        () => {
          if (this.building !== build) return;
          this.building = undefined;
          if (this.options.ring() === ring) this.built = { ring, leaves, trees: this.treesOf(ring, leaves) };
        },
        (error: unknown) => {
          if (this.building === build) this.building = undefined;
          throw error;
        },
      );
    return build;
  }

  private treesOf(ring: Ring, leaves: readonly Map<string, string>[]): Map<NodeId, Buffer> {
    const trees = new Map(ring.nodes.filter((id) => id !== this.options.self).map((id) => [id, Buffer.alloc(this.options.leafCount * HASH_BYTES)] as const));
    leaves.forEach((entries, leaf) => {
      for (const [name, hash] of entries) {
        const key = Buffer.from(name, 'latin1');
        const contribution = keyHash(key, Buffer.from(hash, 'latin1'));
        for (const owner of this.owners(ring, ringPosition(key))) {
          const tree = trees.get(owner);
          if (tree !== undefined) xorInto(tree, leaf, contribution);
        }
      }
    });
    return trees;
  }

  /** Records `key`'s set in `leaves` when this node owns it (removes it when `set` is empty); its set hash, if recorded. */
  private setEntry(leaves: Map<string, string>[], ring: Ring, key: Buffer, set: SiblingSet): Buffer | undefined {
    const position = ringPosition(key);
    if (!this.owners(ring, position).includes(this.options.self)) return undefined;
    const entries = leaves[leafOf(position, this.options.leafCount)]!;
    if (set.length === 0) {
      entries.delete(key.toString('latin1'));
      return undefined;
    }
    const hash = setHashOf(set);
    entries.set(key.toString('latin1'), hash.toString('latin1'));
    return hash;
  }

  private owners(ring: Ring, position: number): NodeId[] {
    return ring.walkFrom(position).slice(0, this.options.replicas);
  }

  /** Calls `visit` for every stored key this node owns under `ring`, in key order, page by page. */
  private async scanOwned(ring: Ring, visit: (key: Buffer, set: SiblingSet) => void): Promise<void> {
    let after: Buffer | undefined;
    for (;;) {
      const page = await this.options.store.scan(after === undefined ? { limit: SCAN_PAGE } : { gt: after, limit: SCAN_PAGE });
      for (const { key, set } of page) if (this.owners(ring, ringPosition(key)).includes(this.options.self)) visit(Buffer.from(key), set);
      if (page.length < SCAN_PAGE) return;
      after = Buffer.from(page[page.length - 1]!.key);
    }
  }
}

export function leafOf(position: number, leafCount: number): number {
  return Math.floor((position / RING_SIZE) * leafCount);
}

function setHashOf(set: SiblingSet): Buffer {
  return createHash('sha256').update(encodeSiblingSet(set)).digest();
}

/** A key's contribution to its leaf: SHA-256(key length, key, set hash). */
function keyHash(key: Buffer, setHash: Buffer): Buffer {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(key.length);
  return createHash('sha256').update(length).update(key).update(setHash).digest();
}

/** XORs the 32 bytes of `hash` into leaf `leaf` of `tree`. */
function xorInto(tree: Buffer, leaf: number, hash: Buffer): void {
  const offset = leaf * HASH_BYTES;
  for (let index = 0; index < HASH_BYTES; index++) tree[offset + index]! ^= hash[index]!;
}

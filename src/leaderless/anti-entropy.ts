/**
 * Active anti-entropy (Dynamo §4.7, Riak AAE, Cassandra repair): two replicas
 * compare hash trees of the keys they both own and exchange only the keys
 * that differ.
 *
 * The tree: the keys this node and a peer both own (the peer is in the key's
 * preference list and so is this node) fall into `leafCount` leaves by their
 * ring position; a leaf's hash is the XOR of SHA-256(key length, key,
 * SHA-256 of the canonical sibling set) over its keys (order-free, so one
 * key's change updates it in O(1), as Cassandra's Merkle leaves combine row
 * hashes). Leaves follow the ring, so a leaf is a slice of ring segments and
 * a differing leaf names a key range to repair.
 *
 * An exchange with a peer (`exchange`), started by this node:
 *   1. ask the peer for its leaf hashes (one message, 32 bytes per leaf);
 *      equal roots end the exchange;
 *   2. for up to `leavesPerRoundMax` differing leaves, ask for the peer's
 *      (key, set hash) pairs;
 *   3. for each key that differs (up to `keysPerRoundMax`): pull the peer's
 *      set and merge it here, then push the merged set to the peer.
 * What is left over is repaired by the next round.
 *
 * Cost (docs/leaderless.md): each node MAINTAINS its leaf hashes for every
 * peer in memory (`leafCount` × 32 bytes per peer), built by one scan at the
 * first exchange and after a membership change, then updated on every
 * stored change (`Replica.onStored`). An exchange between replicas that
 * agree costs one message and no scan; step 2 still scans the replica to
 * list the differing leaves' keys (O(keys), only when something differs).
 * A leaf a racing write left wrong (a change during the building scan) only
 * makes that leaf differ: step 2 recomputes it from the keys it lists, so it
 * heals at the next exchange. Rounds run every `intervalMs` (default 60 s)
 * with the next peer that is up, and on demand (`impulse repair`).
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../util/clock.js';
import { encodeSiblingSet } from './codec.js';
import type { NodeId } from './dvv.js';
import type { FailureDetector } from './failure-detector.js';
import type { PeerLink } from './peer-link.js';
import type { Replica } from './replica.js';
import type { EngineReplicaStore } from './replica-store.js';
import { type Ring, ringPosition } from './ring.js';
import type { SiblingSet } from './dvv.js';

export const LEAF_COUNT_DEFAULT = 1024;
export const LEAF_COUNT_MAX = 65_536;
const HASH_BYTES = 32;
const RING_SIZE = 2 ** 48;
const SCAN_PAGE = 1000;

export interface AntiEntropyOptions {
  readonly self: NodeId;
  readonly store: EngineReplicaStore;
  readonly replica: Replica;
  readonly link: PeerLink;
  readonly ring: () => Ring;
  readonly replicas: number;
  readonly detector: FailureDetector;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Period of background exchanges, ms; 0 disables them (on demand only). */
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly leafCount?: number;
  readonly leavesPerRoundMax?: number;
  readonly keysPerRoundMax?: number;
  /** Test-only (the simulator's mutation check): never repair leaves with an odd index. */
  readonly skipOddLeaves?: boolean;
}

export interface AntiEntropyFigures {
  exchanges: number;
  exchangesFailed: number;
  leavesDiffering: number;
  keysPulled: number;
  keysPushed: number;
  /** Bytes of tree, key lists and sets received and sent by exchanges this node started. */
  bytesExchanged: number;
}

/** The outcome of one exchange. */
export interface ExchangeResult {
  readonly peer: NodeId;
  readonly leavesDiffering: number;
  readonly keysPulled: number;
  readonly keysPushed: number;
}

export class AntiEntropy {
  readonly figures: AntiEntropyFigures = { exchanges: 0, exchangesFailed: 0, leavesDiffering: 0, keysPulled: 0, keysPushed: 0, bytesExchanged: 0 };
  readonly leafCount: number;
  private nextPeer = 0;
  private timer: TimerHandle | undefined;
  private stopped = false;
  /** The maintained leaf hashes per peer, for `treeRing`; empty until the first exchange (or after a ring change). */
  private trees = new Map<NodeId, Buffer>();
  private treeRing: Ring | undefined;
  private building: Promise<void> | undefined;

  constructor(private readonly options: AntiEntropyOptions) {
    this.leafCount = options.leafCount ?? LEAF_COUNT_DEFAULT;
    options.replica.onStored((key, before, after) => this.noteStored(key, before, after));
  }

  start(): void {
    if (this.options.intervalMs <= 0) return;
    const next = (): void => {
      if (this.stopped) return;
      this.timer = this.options.clock.setTimer(this.options.intervalMs, () => {
        const peer = this.pickPeer();
        if (peer === undefined) return next();
        this.exchange(peer).then(next, (error: unknown) => {
          this.options.logger.debug({ err: error, peer }, 'anti-entropy exchange failed');
          next();
        });
      });
    };
    next();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /**
   * The hashes of the leaves over the keys this node and `peer` both own:
   * `leafCount` × 32 bytes. From the maintained tree when `leafCount` is this
   * node's; by a scan otherwise (a peer configured differently).
   */
  async leafHashes(peer: NodeId, leafCount: number): Promise<Buffer> {
    if (leafCount === this.leafCount) return Buffer.from(await this.tree(peer));
    return this.scanLeafHashes(peer, leafCount);
  }

  /** The same leaf hashes computed by a scan of the stored keys (no maintained state). */
  async scanLeafHashes(peer: NodeId, leafCount: number): Promise<Buffer> {
    const out = Buffer.alloc(leafCount * HASH_BYTES);
    await this.forSharedKeys(peer, leafCount, (leaf, key, setHash) => xorInto(out, leaf, keyHash(key, setHash)));
    return out;
  }

  /**
   * The (key, set hash) pairs of the given leaves over the keys this node and
   * `peer` both own, in key order (a scan). Recomputes those leaves of the
   * maintained tree from them, which heals a leaf a racing write left wrong.
   */
  async leafEntries(peer: NodeId, leafCount: number, wanted: readonly number[]): Promise<[Buffer, Buffer][]> {
    const set = new Set(wanted);
    const entries: [Buffer, Buffer][] = [];
    const recomputed = Buffer.alloc(leafCount * HASH_BYTES);
    const ring = this.options.ring();
    await this.forSharedKeys(peer, leafCount, (leaf, key, setHash) => {
      if (!set.has(leaf)) return;
      entries.push([Buffer.from(key), setHash]);
      xorInto(recomputed, leaf, keyHash(key, setHash));
    });
    const tree = this.trees.get(peer);
    if (leafCount === this.leafCount && tree !== undefined && this.treeRing === ring) {
      for (const leaf of set) recomputed.copy(tree, leaf * HASH_BYTES, leaf * HASH_BYTES, (leaf + 1) * HASH_BYTES);
    }
    return entries;
  }

  /** The maintained leaf hashes for `peer`, built (for every peer at once, by one scan) when missing or the ring changed. */
  private async tree(peer: NodeId): Promise<Buffer> {
    for (;;) {
      const ring = this.options.ring();
      const tree = this.treeRing === ring ? this.trees.get(peer) : undefined;
      if (tree !== undefined) return tree;
      this.building ??= this.build(ring).finally(() => (this.building = undefined));
      await this.building;
    }
  }

  /**
   * Builds the trees of every peer for `ring` by one scan. They are in place
   * before the scan starts, so changes during it update them too: a key
   * changed while the scan passes it may be counted twice, which leaves its
   * leaf wrong until `leafEntries` recomputes it (the file comment).
   */
  private async build(ring: Ring): Promise<void> {
    const trees = new Map(ring.nodes.filter((id) => id !== this.options.self).map((id) => [id, Buffer.alloc(this.leafCount * HASH_BYTES)] as const));
    this.trees = trees;
    this.treeRing = ring;
    await this.forStoredKeys(ring, this.leafCount, (leaf, key, setHash, owners) => {
      const hash = keyHash(key, setHash);
      for (const owner of owners) {
        const tree = trees.get(owner);
        if (tree !== undefined) xorInto(tree, leaf, hash);
      }
    });
  }

  /** Keeps the trees up to date with one stored change (Replica.onStored). */
  private noteStored(key: Buffer, before: SiblingSet, after: SiblingSet): void {
    if (this.trees.size === 0) return;
    const ring = this.options.ring();
    if (this.treeRing !== ring) {
      this.trees = new Map();
      this.treeRing = undefined;
      return;
    }
    const position = ringPosition(key);
    const owners = ring.walkFrom(position).slice(0, this.options.replicas);
    if (!owners.includes(this.options.self)) return;
    const delta = Buffer.alloc(HASH_BYTES);
    if (before.length > 0) xorInto(delta, 0, keyHash(key, setHashOf(before)));
    if (after.length > 0) xorInto(delta, 0, keyHash(key, setHashOf(after)));
    const leaf = leafOf(position, this.leafCount);
    for (const owner of owners) {
      const tree = this.trees.get(owner);
      if (tree !== undefined) xorInto(tree, leaf, delta);
    }
  }

  /** One exchange with `peer` (see the file comment). Rejects when the peer does not answer. */
  async exchange(peer: NodeId): Promise<ExchangeResult> {
    const { link, timeoutMs } = this.options;
    try {
      const [theirs, ours] = await Promise.all([link.treeLeaves(peer, this.leafCount, timeoutMs), this.leafHashes(peer, this.leafCount)]);
      this.figures.bytesExchanged += theirs.length;
      const differing = this.differingLeaves(ours, theirs);
      this.figures.exchanges++;
      this.figures.leavesDiffering += differing.length;
      if (differing.length === 0) return { peer, leavesDiffering: 0, keysPulled: 0, keysPushed: 0 };
      const [theirEntries, ourEntries] = await Promise.all([link.leafEntries(peer, this.leafCount, differing, timeoutMs), this.leafEntries(peer, this.leafCount, differing)]);
      this.figures.bytesExchanged += theirEntries.reduce((sum, [key, hash]) => sum + key.length + hash.length, 0);
      const keys = differingKeys(ourEntries, theirEntries).slice(0, this.options.keysPerRoundMax ?? 1000);
      let pulled = 0;
      let pushed = 0;
      // Each key costs two round trips (pull, push); KEYS_IN_FLIGHT keys at a time, so a round of
      // a thousand keys is not a thousand sequential round-trip pairs.
      for (let start = 0; start < keys.length; start += KEYS_IN_FLIGHT) {
        await Promise.all(
          keys.slice(start, start + KEYS_IN_FLIGHT).map(async (key) => {
            const remote = await link.read(peer, key, timeoutMs);
            this.figures.bytesExchanged += encodeSiblingSet(remote).length;
            const { set } = await this.options.replica.apply(key, remote);
            if (remote.length > 0) pulled++;
            if (await link.apply(peer, key, set, timeoutMs)) pushed++;
            this.figures.bytesExchanged += encodeSiblingSet(set).length;
          }),
        );
      }
      this.figures.keysPulled += pulled;
      this.figures.keysPushed += pushed;
      return { peer, leavesDiffering: differing.length, keysPulled: pulled, keysPushed: pushed };
    } catch (error) {
      this.figures.exchangesFailed++;
      throw error;
    }
  }

  /** Exchanges with every other member that answers; resolves with each outcome (`impulse repair`). */
  async repairAll(): Promise<(ExchangeResult | { peer: NodeId; error: string })[]> {
    const peers = this.options.ring().nodes.filter((id) => id !== this.options.self);
    const results: (ExchangeResult | { peer: NodeId; error: string })[] = [];
    for (const peer of peers) {
      // Until an exchange finds nothing more to do (each round is bounded), at most 100 rounds. A failed
      // exchange is retried, up to FAILURES_PER_PEER_MAX in a row: the first one after a restart waits
      // for the peer to build its trees by a scan, which can outlast a request time on a large store.
      let failures = 0;
      for (let round = 0; round < 100; round++) {
        try {
          const result = await this.exchange(peer);
          failures = 0;
          if (round === 0 || result.leavesDiffering > 0) results.push(result);
          if (result.leavesDiffering === 0) break;
        } catch (error) {
          if (++failures < FAILURES_PER_PEER_MAX) continue;
          results.push({ peer, error: (error as Error).message });
          break;
        }
      }
    }
    return results;
  }

  private differingLeaves(ours: Buffer, theirs: Buffer): number[] {
    const differing: number[] = [];
    const max = this.options.leavesPerRoundMax ?? 64;
    for (let leaf = 0; leaf < this.leafCount && differing.length < max; leaf++) {
      if (this.options.skipOddLeaves === true && leaf % 2 === 1) continue;
      if (ours.compare(theirs, leaf * HASH_BYTES, (leaf + 1) * HASH_BYTES, leaf * HASH_BYTES, (leaf + 1) * HASH_BYTES) !== 0) differing.push(leaf);
    }
    return differing;
  }

  private pickPeer(): NodeId | undefined {
    const peers = this.options.ring().nodes.filter((id) => id !== this.options.self && this.options.detector.liveness(id) === 'up');
    if (peers.length === 0) return undefined;
    return peers[this.nextPeer++ % peers.length];
  }

  /** Calls `visit` for every stored key that this node and `peer` both own, in key order, with its leaf and set hash. */
  private forSharedKeys(peer: NodeId, leafCount: number, visit: (leaf: number, key: Buffer, setHash: Buffer) => void): Promise<void> {
    return this.forStoredKeys(this.options.ring(), leafCount, (leaf, key, setHash, owners) => {
      if (owners.includes(peer)) visit(leaf, key, setHash);
    });
  }

  /** Calls `visit` for every stored key this node owns under `ring`, in key order, with its leaf, set hash and owners. */
  private async forStoredKeys(ring: Ring, leafCount: number, visit: (leaf: number, key: Buffer, setHash: Buffer, owners: readonly NodeId[]) => void): Promise<void> {
    let after: Buffer | undefined;
    for (;;) {
      const page = await this.options.store.scan(after === undefined ? { limit: SCAN_PAGE } : { gt: after, limit: SCAN_PAGE });
      for (const { key, set } of page) {
        const position = ringPosition(key);
        const owners = ring.walkFrom(position).slice(0, this.options.replicas);
        if (owners.includes(this.options.self)) visit(leafOf(position, leafCount), key, setHashOf(set), owners);
      }
      if (page.length < SCAN_PAGE) return;
      after = Buffer.from(page[page.length - 1]!.key);
    }
  }
}

function leafOf(position: number, leafCount: number): number {
  return Math.floor((position / RING_SIZE) * leafCount);
}

function setHashOf(set: SiblingSet): Buffer {
  return createHash('sha256').update(encodeSiblingSet(set)).digest();
}

/** A key's contribution to its leaf: SHA-256(key length, key, set hash). */
function keyHash(key: Buffer, setHash: Buffer): Buffer {
  return createHash('sha256').update(lengthOf(key)).update(key).update(setHash).digest();
}

/** Differing keys one exchange pulls and pushes at once (bounds the requests in flight to one peer). */
const KEYS_IN_FLIGHT = 16;

/** Exchanges with one peer that may fail in a row before `repairAll` gives up on it. */
const FAILURES_PER_PEER_MAX = 3;

/** XORs the 32 bytes of `hash` into leaf `leaf` of `tree`. */
function xorInto(tree: Buffer, leaf: number, hash: Buffer): void {
  const offset = leaf * HASH_BYTES;
  for (let index = 0; index < HASH_BYTES; index++) tree[offset + index]! ^= hash[index]!;
}

/** Keys present on one side only, or with different set hashes. */
function differingKeys(ours: readonly [Buffer, Buffer][], theirs: readonly [Buffer, Buffer][]): Buffer[] {
  const mine = new Map(ours.map(([key, hash]) => [key.toString('latin1'), hash]));
  const keys = new Map<string, Buffer>();
  for (const [key, hash] of theirs) {
    const held = mine.get(key.toString('latin1'));
    if (held === undefined || !held.equals(hash)) keys.set(key.toString('latin1'), key);
  }
  const theirNames = new Set(theirs.map(([key]) => key.toString('latin1')));
  for (const [key] of ours) if (!theirNames.has(key.toString('latin1'))) keys.set(key.toString('latin1'), key);
  return [...keys.values()];
}

function lengthOf(key: Buffer): Buffer {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(key.length);
  return length;
}

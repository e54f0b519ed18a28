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
 * a differing leaf names a key range to repair. The per-key hashes and the
 * trees are kept in memory (key-hashes.ts), so neither side scans its store
 * during an exchange.
 *
 * An exchange with a peer (`exchange`), started by this node, is one PASS
 * over every differing leaf:
 *   1. ask the peer for its leaf hashes (one message, 32 bytes per leaf);
 *      equal roots end the exchange;
 *   2. walk the differing leaves in batches (a batch: leaves holding at most
 *      `ENTRIES_PER_BATCH_MAX` keys here, at least one leaf): ask for the
 *      peer's (key, set hash) pairs of the batch, compare with ours;
 *   3. for each key that differs, KEYS_IN_FLIGHT at a time: pull the peer's
 *      set, merge it here, push the merged set to the peer.
 * The pass stops early, before its next batch, once it has run
 * `passTimeMaxMs` or exchanged `passBytesMax` bytes; the result says whether
 * it was `complete` and how many leaves it repaired, and the next exchange
 * carries on. Rounds run every `intervalMs` (default 60 s) with the next
 * peer that is up, and on demand (`impulse repair`).
 */
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { encodeSiblingSet } from './codec.js';
import type { NodeId } from './dvv.js';
import type { FailureDetector } from './failure-detector.js';
import { HASH_BYTES, type KeyEntry, KeyHashes } from './key-hashes.js';
import type { PeerLink } from './peer-link.js';
import type { Replica } from './replica.js';
import type { EngineReplicaStore } from './replica-store.js';
import type { Ring } from './ring.js';

export const LEAF_COUNT_DEFAULT = 1024;
export const LEAF_COUNT_MAX = 65_536;

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
  /** A pass (a background round, or one peer's share of `impulse repair`) starts no new batch after this long, ms. */
  readonly passTimeMaxMs: number;
  /** A pass starts no new batch after exchanging this many bytes. */
  readonly passBytesMax: number;
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

/** The outcome of one exchange (one pass). */
export interface ExchangeResult {
  readonly peer: NodeId;
  /** Leaves whose hashes differed at the start of the pass. */
  readonly leavesDiffering: number;
  /** Of those, the leaves the pass got to (all of them when `complete`). */
  readonly leavesRepaired: number;
  readonly keysPulled: number;
  readonly keysPushed: number;
  /** Bytes received and sent by this pass. */
  readonly bytes: number;
  readonly elapsedMs: number;
  /** False when the pass stopped at its time or byte bound with leaves left. */
  readonly complete: boolean;
}

export class AntiEntropy {
  readonly figures: AntiEntropyFigures = { exchanges: 0, exchangesFailed: 0, leavesDiffering: 0, keysPulled: 0, keysPushed: 0, bytesExchanged: 0 };
  readonly leafCount: number;
  private readonly hashes: KeyHashes;
  private nextPeer = 0;
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly options: AntiEntropyOptions) {
    this.leafCount = options.leafCount ?? LEAF_COUNT_DEFAULT;
    this.hashes = new KeyHashes({ self: options.self, store: options.store, ring: options.ring, replicas: options.replicas, leafCount: this.leafCount });
    options.replica.onStored((key, _before, after) => this.hashes.noteStored(key, after));
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
    this.checkMember(peer);
    if (leafCount === this.leafCount) return Buffer.from(await this.hashes.tree(peer));
    return this.hashes.scanTree(peer, leafCount);
  }

  /** The same leaf hashes computed by a scan of the stored keys (no maintained state; tests compare the two). */
  scanLeafHashes(peer: NodeId, leafCount: number): Promise<Buffer> {
    return this.hashes.scanTree(peer, leafCount);
  }

  /**
   * The (key, set hash) pairs of the given leaves over the keys this node and
   * `peer` both own: from the maintained index, or by a scan for a leaf count
   * other than this node's (a peer configured differently).
   */
  async leafEntries(peer: NodeId, leafCount: number, wanted: readonly number[]): Promise<KeyEntry[]> {
    this.checkMember(peer);
    if (leafCount !== this.leafCount) return this.hashes.scanEntries(peer, leafCount, wanted);
    return this.hashes.entries(peer, wanted);
  }

  /**
   * Refuses an exchange with a node that is not a member under this node's
   * ring (a joiner not yet committed, a member that left, or one whose view
   * is behind): there is no tree of keys both own, and its keys are not ours
   * to take — the membership change's transfer and cleanup move them.
   */
  private checkMember(peer: NodeId): void {
    if (peer === this.options.self || !this.options.ring().nodes.includes(peer)) {
      throw new ImpulseError('IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', `anti-entropy with node ${peer} refused: it is not a member under node ${this.options.self}'s membership`, { details: { peer } });
    }
  }

  /** One exchange with `peer`: a pass over every differing leaf (the file comment). Rejects when the peer does not answer. */
  async exchange(peer: NodeId): Promise<ExchangeResult> {
    const { link, timeoutMs, clock } = this.options;
    const startedMs = clock.now();
    const deadlineMs = startedMs + this.options.passTimeMaxMs;
    const bytesMax = this.options.passBytesMax;
    const tally = { bytes: 0, pulled: 0, pushed: 0 };
    try {
      const [theirs, ours] = await Promise.all([link.treeLeaves(peer, this.leafCount, timeoutMs), this.leafHashes(peer, this.leafCount)]);
      tally.bytes += theirs.length;
      const differing = this.differingLeaves(ours, theirs);
      this.figures.exchanges++;
      this.figures.leavesDiffering += differing.length;
      let done = 0;
      while (done < differing.length && clock.now() < deadlineMs && tally.bytes < bytesMax) {
        const batch = this.nextBatch(differing, done);
        await this.repairBatch(peer, batch, tally);
        done += batch.length;
      }
      return { peer, leavesDiffering: differing.length, leavesRepaired: done, keysPulled: tally.pulled, keysPushed: tally.pushed, bytes: tally.bytes, elapsedMs: clock.now() - startedMs, complete: done === differing.length };
    } catch (error) {
      this.figures.exchangesFailed++;
      throw error;
    } finally {
      this.figures.bytesExchanged += tally.bytes;
      this.figures.keysPulled += tally.pulled;
      this.figures.keysPushed += tally.pushed;
    }
  }

  /** Leaves from `differing[from]` on holding at most ENTRIES_PER_BATCH_MAX keys here (at least one leaf). */
  private nextBatch(differing: readonly number[], from: number): number[] {
    const batch = [differing[from]!];
    let entries = this.hashes.leafSize(differing[from]!);
    for (let index = from + 1; index < differing.length && batch.length < LEAVES_PER_BATCH_MAX; index++) {
      entries += this.hashes.leafSize(differing[index]!);
      if (entries > ENTRIES_PER_BATCH_MAX) break;
      batch.push(differing[index]!);
    }
    return batch;
  }

  /** Compares one batch of leaves with `peer` and pulls and pushes each differing key. */
  private async repairBatch(peer: NodeId, leaves: readonly number[], tally: { bytes: number; pulled: number; pushed: number }): Promise<void> {
    const { link, timeoutMs } = this.options;
    const [theirEntries, ourEntries] = await Promise.all([link.leafEntries(peer, this.leafCount, leaves, timeoutMs), this.leafEntries(peer, this.leafCount, leaves)]);
    tally.bytes += theirEntries.reduce((sum, [key, hash]) => sum + key.length + hash.length, 0);
    const keys = differingKeys(ourEntries, theirEntries);
    // Each key costs two round trips (pull, push); KEYS_IN_FLIGHT keys at a time, so a batch of
    // a thousand keys is not a thousand sequential round-trip pairs.
    for (let start = 0; start < keys.length; start += KEYS_IN_FLIGHT) {
      await Promise.all(
        keys.slice(start, start + KEYS_IN_FLIGHT).map(async (key) => {
          const remote = await link.read(peer, key, timeoutMs);
          tally.bytes += encodeSiblingSet(remote).length;
          const { set } = await this.options.replica.apply(key, remote);
          if (remote.length > 0) tally.pulled++;
          if (await link.apply(peer, key, set, timeoutMs)) tally.pushed++;
          tally.bytes += encodeSiblingSet(set).length;
        }),
      );
    }
  }

  /**
   * Exchanges with every other member that answers; resolves with each
   * outcome (`impulse repair`). Per peer: passes until one finds nothing
   * differing (normally two: the repair and the check), at most
   * PASSES_PER_PEER_MAX; a failed exchange is retried, up to
   * FAILURES_PER_PEER_MAX in a row — the first one after a restart waits for
   * the peer to build its index by a scan, which can outlast a request time on
   * a large store.
   */
  async repairAll(): Promise<(ExchangeResult | { peer: NodeId; error: string })[]> {
    const peers = this.options.ring().nodes.filter((id) => id !== this.options.self);
    const results: (ExchangeResult | { peer: NodeId; error: string })[] = [];
    for (const peer of peers) {
      let failures = 0;
      for (let pass = 0; pass < PASSES_PER_PEER_MAX; pass++) {
        try {
          const result = await this.exchange(peer);
          failures = 0;
          if (pass === 0 || result.leavesDiffering > 0) results.push(result);
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
    for (let leaf = 0; leaf < this.leafCount; leaf++) {
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
}

/** Differing keys one exchange pulls and pushes at once (bounds the requests in flight to one peer). */
const KEYS_IN_FLIGHT = 16;

/** Keys (counted here) whose hashes one batch asks the peer for: bounds that answer's size. */
const ENTRIES_PER_BATCH_MAX = 8192;

/** Leaves per batch at most (the peer accepts up to 4096 per request): also bounds a batch of nearly empty leaves. */
const LEAVES_PER_BATCH_MAX = 64;

/** Exchanges with one peer that may fail in a row before `repairAll` gives up on it. */
const FAILURES_PER_PEER_MAX = 3;

/** Passes `repairAll` runs with one peer at most (each bounded by time and bytes). */
const PASSES_PER_PEER_MAX = 10;

/** Keys present on one side only, or with different set hashes. */
function differingKeys(ours: readonly KeyEntry[], theirs: readonly KeyEntry[]): Buffer[] {
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

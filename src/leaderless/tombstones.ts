/**
 * Tombstone collection: a deleted key's tombstones are removed once every
 * owner holds them and a grace period has passed (Cassandra's
 * gc_grace_seconds; Riak's delete_mode with a delay).
 *
 * Every `intervalMs` one round walks this node's stored keys from where the
 * last round stopped (at most `keysPerRoundMax` per round; the walk wraps
 * around). A key is a candidate when this node is FIRST in its preference
 * list (so one owner, not N, does the work), its set holds only tombstones,
 * and the newest of them is older than `graceMs` by this node's wall clock.
 * For a candidate the collector
 *   1. reads the key from every owner: each must answer, with exactly the
 *      same tombstones (an owner that is down or behind blocks collection;
 *      anti-entropy, read repair and hints bring it up to date first);
 *   2. asks every owner to remove the key if it still stores exactly those
 *      tombstones (`Replica.reap`; a write that arrived meanwhile keeps it).
 * An owner that missed step 2 keeps its tombstone; anti-entropy copies it
 * back to the others and a later round collects it everywhere.
 *
 * What the grace period is for (the resurrection hazard, docs/leaderless.md):
 * state older than the delete that is NOT on an owner — a hint held by a
 * stand-in that is down, a replica restored from a backup — is merged away by
 * the tombstone while the tombstone exists, but once it is collected such
 * state brings the deleted value back. Bring members back (and let hints be
 * delivered) within the grace period.
 *
 * Dots stay unique after collection because new dots are numbered from the
 * hybrid clock (dvv.ts, `update`).
 */
import type { Logger } from 'pino';
import type { Clock } from '../util/clock.js';
import { Rounds } from '../util/rounds.js';
import { type NodeId, type SiblingSet, onlyTombstones, sameDots } from './dvv.js';
import type { FailureDetector } from './failure-detector.js';
import type { PeerLink } from './peer-link.js';
import type { EngineReplicaStore } from './replica-store.js';
import type { Ring } from './ring.js';

export interface TombstoneCollectorOptions {
  readonly self: NodeId;
  readonly store: EngineReplicaStore;
  readonly link: PeerLink;
  /** True while a membership change is under way: no collection then (the owners are moving). */
  readonly changing: () => boolean;
  /** Owners it sees `down` block a candidate at once, without a read that would time out. */
  readonly detector: Pick<FailureDetector, 'liveness'>;
  readonly ring: () => Ring;
  /** N: owners per key. */
  readonly replicas: number;
  readonly clock: Clock;
  /** Wall-clock ms: tombstone timestamps are hybrid wall-clock microseconds. */
  readonly wallClockMs: () => number;
  readonly logger: Logger;
  /** How old (ms, by the wall clock) a key's newest tombstone must be before it may be collected. */
  readonly graceMs: number;
  /** Period of collection rounds, ms; 0 disables them. */
  readonly intervalMs: number;
  /** Per-call timeout of the reads and reaps, ms. */
  readonly timeoutMs: number;
  /** Stored keys looked at per round (default 1000). */
  readonly keysPerRoundMax?: number;
}

export interface TombstoneFigures {
  rounds: number;
  /** Keys this node removed as the collecting owner (every owner's removals: Replica figures). */
  collected: number;
  /** Candidates left for a later round: an owner did not answer or held something else. */
  blocked: number;
}

export class TombstoneCollector {
  readonly figures: TombstoneFigures = { rounds: 0, collected: 0, blocked: 0 };
  private after: Buffer | undefined;
  private readonly rounds: Rounds;

  constructor(private readonly options: TombstoneCollectorOptions) {
    this.rounds = new Rounds(options.clock, options.intervalMs, () => this.round(), options.logger, 'tombstone collection round failed');
  }

  start(): void {
    this.rounds.start();
  }

  stop(): void {
    this.rounds.stop();
  }

  /** One round (also called directly by tests). Resolves with the keys collected. */
  async round(): Promise<number> {
    if (this.options.changing()) return 0;
    const limit = this.options.keysPerRoundMax ?? 1000;
    const page = await this.options.store.scan(this.after === undefined ? { limit } : { gt: this.after, limit });
    this.after = page.length < limit ? undefined : Buffer.from(page[page.length - 1]!.key);
    this.figures.rounds++;
    const horizonMicros = (this.options.wallClockMs() - this.options.graceMs) * 1000;
    let collected = 0;
    for (const { key, set } of page) {
      if (this.rounds.isStopped) break;
      if (!onlyTombstones(set) || Math.max(...set.map((sibling) => sibling.timestamp)) > horizonMicros) continue;
      const owners = this.options.ring().preferenceList(key, this.options.replicas);
      if (owners[0] !== this.options.self) continue;
      if (await this.collect(Buffer.from(key), set, owners)) collected++;
    }
    this.figures.collected += collected;
    return collected;
  }

  /** Steps 1 and 2 of the file comment for one key; true when this node removed it. */
  private async collect(key: Buffer, set: SiblingSet, owners: readonly NodeId[]): Promise<boolean> {
    const { link, timeoutMs, detector } = this.options;
    const reachable = owners.every((owner) => detector.liveness(owner) !== 'down');
    const held = reachable && (await Promise.all(owners.map((owner) => link.read(owner, key, timeoutMs).then((answer) => sameDots(answer, set), () => false)))).every(Boolean);
    if (!held) {
      this.figures.blocked++;
      return false;
    }
    const removed = await Promise.all(owners.map((owner) => link.reap(owner, key, set, timeoutMs).catch(() => false)));
    return removed[owners.indexOf(this.options.self)] === true;
  }
}

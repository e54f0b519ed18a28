/**
 * The coordinator: any node serves any request by talking to the key's
 * preference list (Dynamo §4.5). Time only through the Clock, peers only
 * through the `PeerLink` (the RPC endpoint on TCP, or on the simulator's
 * network), so the simulator runs this same code.
 *
 * A write (`put`, value null = delete):
 *   1. One owner COORDINATES it: this node if it is an owner, else the owners
 *      in order (up ones first). That replica names the new dot from its own
 *      stored set (so dots are unique), applies the client's context, stores
 *      the result durably and returns it. If none can, nothing was written:
 *      IMPULSE_ERR_QUORUM_UNAVAILABLE with answered 0.
 *   2. The resulting set goes to the other owners (they merge it). With a
 *      sloppy quorum an owner that is down, or fails to answer, is replaced
 *      by the next fallback node clockwise, which stores the set as a HINT
 *      for that owner (durably) and counts toward W.
 *   3. The client gets its answer after W acknowledgements (the coordinating
 *      owner's included), or IMPULSE_ERR_QUORUM_UNAVAILABLE (needed, answered)
 *      once that cannot happen or the request time runs out. Replication to
 *      the rest carries on after the answer; a failed write is not undone
 *      (the replicas that have it keep it, as in Dynamo and Riak).
 *
 * A read (`get`): every owner is asked; the answer is the reconciliation of
 * the first R answers. Once all owners answered (or the time ran out), the
 * reconciliation of every answer is sent to each owner whose answer lacked
 * something (READ REPAIR).
 */
import { ImpulseError, isImpulseError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { type NodeId, type SiblingSet, type VersionVector, contextOf, sameDots } from './dvv.js';
import type { FailureDetector } from './failure-detector.js';
import type { PeerLink } from './peer-link.js';
import type { Replica } from './replica.js';
import type { Ring } from './ring.js';

export interface CoordinatorOptions {
  readonly self: NodeId;
  /** The current ring (it changes with the membership). */
  readonly ring: () => Ring;
  /** The ring of a membership change under way (membership.ts), if any: its new owners get every write too, and count. */
  readonly pendingRing?: () => Ring | undefined;
  /** N: owners per key. */
  readonly replicas: number;
  /** Sloppy quorum: fallbacks hold hints for owners that are down and count toward W. */
  readonly sloppy: boolean;
  readonly link: PeerLink;
  readonly detector: FailureDetector;
  /** This node's replica: its conflict mode reconciles answers. */
  readonly replica: Replica;
  readonly clock: Clock;
  /** Whole-request time, ms. */
  readonly requestTimeoutMs: number;
  /** Test-only broken behaviours for the simulator's mutation check; never set in production. */
  readonly mutations?: LeaderlessMutations;
}

/**
 * Deliberately broken leaderless nodes (like `RaftMutations`): the
 * simulator's sweep must catch each one (testkit/sim/leaderless/). Nothing
 * but the mutation check sets them.
 */
export interface LeaderlessMutations {
  /** Acknowledges a write as soon as the coordinating replica stored it, whatever W is. */
  readonly acknowledgeEarly?: boolean;
  /** Never read-repairs. */
  readonly skipReadRepair?: boolean;
  /** Anti-entropy never repairs leaves with an odd index (a range it skips). */
  readonly antiEntropySkipsOddLeaves?: boolean;
  /** A write supersedes everything the coordinating owner holds, not just what its context saw: concurrent writes are silently lost (a server-side version per key). */
  readonly supersedeUnseen?: boolean;
  /** Ownership handoff moves nothing: the transfer step pushes no key and the cleanup deletes keys no longer owned without handing them off. */
  readonly handoffMovesNothing?: boolean;
}

export interface CoordinatorFigures {
  reads: number;
  writes: number;
  readRepairs: number;
  hintedWrites: number;
  quorumFailures: number;
}

/** Errors a replica answers that another replica would answer too: the request itself is at fault. */
const FINAL_CODES = new Set(['IMPULSE_ERR_SIBLINGS_TOO_MANY', 'IMPULSE_ERR_CONTEXT_INVALID', 'IMPULSE_ERR_VALUE_TOO_LARGE', 'IMPULSE_ERR_KEY_TOO_LARGE']);

export class Coordinator {
  readonly figures: CoordinatorFigures = { reads: 0, writes: 0, readRepairs: 0, hintedWrites: 0, quorumFailures: 0 };

  constructor(private readonly options: CoordinatorOptions) {}

  /** Writes `value` (null: a tombstone) with `context`; resolves with the coordinated set once `w` replicas hold it. `w` in [1, N]. */
  async put(key: Buffer, value: Buffer | null, context: VersionVector, w: number): Promise<SiblingSet> {
    this.figures.writes++;
    const deadline = this.options.clock.now() + this.options.requestTimeoutMs;
    const owners = this.options.ring().preferenceList(key, this.options.replicas);
    let coordinated: { node: NodeId; set: SiblingSet } | undefined;
    for (const node of this.coordinatorOrder(owners)) {
      const remaining = deadline - this.options.clock.now();
      if (remaining <= 0) break;
      try {
        // TEST-ONLY mutation (supersedeUnseen): the context widened to the owner's whole set.
        const used = this.options.mutations?.supersedeUnseen === true ? contextOf(await this.options.link.read(node, key, remaining)) : context;
        coordinated = { node, set: await this.options.link.coordinate(node, key, used, value, remaining) };
        this.options.detector.heard(node);
        break;
      } catch (error) {
        if (isImpulseError(error) && FINAL_CODES.has(error.code)) throw error;
      }
    }
    if (coordinated === undefined) throw this.unavailable('write', w, 0);
    // During a membership change the key's owners under the new ring must hold the write too (membership.ts, step 1).
    const gaining = (this.options.pendingRing?.()?.preferenceList(key, this.options.replicas) ?? []).filter((node) => !owners.includes(node));
    return this.replicate(key, coordinated.set, [...owners, ...gaining], coordinated.node, w + gaining.length, deadline);
  }

  /** Reads `key` from its owners; resolves with the reconciliation of the first `r` answers. `r` in [1, N]. */
  get(key: Buffer, r: number): Promise<SiblingSet> {
    this.figures.reads++;
    const owners = this.options.ring().preferenceList(key, this.options.replicas);
    const timeoutMs = this.options.requestTimeoutMs;
    const answers = new Map<NodeId, SiblingSet>();
    return new Promise<SiblingSet>((resolve, reject) => {
      let failed = 0;
      let done = false;
      const calls = owners.map((node) =>
        this.options.link.read(node, key, timeoutMs).then(
          (set) => {
            answers.set(node, set);
            this.options.detector.heard(node);
            if (!done && answers.size >= r) {
              done = true;
              resolve(this.reconcileAll([...answers.values()]));
            }
          },
          () => {
            failed++;
            if (!done && owners.length - failed < r) {
              done = true;
              reject(this.unavailable('read', r, answers.size));
            }
          },
        ),
      );
      void Promise.all(calls).then(() => this.repair(key, answers));
    });
  }

  /** Up owners first (this node before all when it owns the key), then suspect, then down ones. */
  private coordinatorOrder(owners: readonly NodeId[]): NodeId[] {
    const rank = (node: NodeId): number => {
      if (node === this.options.self) return 0;
      const liveness = this.options.detector.liveness(node);
      return liveness === 'up' ? 1 : liveness === 'suspect' ? 2 : 3;
    };
    return [...owners].sort((a, b) => rank(a) - rank(b));
  }

  /** Steps 2 and 3 of a write: resolves once `w` of `owners` (or their stand-ins) hold `set` (see the file comment). */
  private replicate(key: Buffer, set: SiblingSet, owners: readonly NodeId[], coordinator: NodeId, w: number, deadline: number): Promise<SiblingSet> {
    const { clock, link, detector, sloppy } = this.options;
    const fallbacks = sloppy ? this.options.ring().walk(key).filter((node) => !owners.includes(node)) : [];
    const remaining = (): number => Math.max(1, deadline - clock.now());
    return new Promise<SiblingSet>((resolve, reject) => {
      let acks = 1;
      let pending = 0;
      let done = false;
      const settle = (): void => {
        if (done) return;
        if (acks >= w || this.options.mutations?.acknowledgeEarly === true) {
          done = true;
          timer.cancel();
          resolve(set);
        } else if (pending === 0) {
          done = true;
          timer.cancel();
          reject(this.unavailable('write', w, acks));
        }
      };
      const timer = clock.setTimer(remaining(), () => {
        if (done) return;
        done = true;
        reject(this.unavailable('write', w, acks));
      });
      /** Sends the set to the next fallback as a hint for `owner`; false when no fallback is left. */
      const toFallback = (owner: NodeId): boolean => {
        const fallback = fallbacks.shift();
        if (fallback === undefined) return false;
        pending++;
        link
          .hint(fallback, owner, key, set, remaining())
          .then(
            () => {
              acks++;
              this.figures.hintedWrites++;
              detector.heard(fallback);
            },
            () => void toFallback(owner),
          )
          .finally(() => {
            pending--;
            settle();
          });
        return true;
      };
      for (const owner of owners) {
        if (owner === coordinator) continue;
        // An owner the detector thinks down goes straight to a stand-in; with none left it is tried anyway (the detector can be wrong).
        if (sloppy && detector.liveness(owner) === 'down' && toFallback(owner)) continue;
        pending++;
        link
          .apply(owner, key, set, remaining())
          .then(
            () => {
              acks++;
              detector.heard(owner);
            },
            () => {
              if (sloppy) toFallback(owner);
            },
          )
          .finally(() => {
            pending--;
            settle();
          });
      }
      settle();
    });
  }

  /** Read repair: the reconciliation of every answer, to each owner whose answer lacked part of it. */
  private repair(key: Buffer, answers: ReadonlyMap<NodeId, SiblingSet>): void {
    if (answers.size < 2 || this.options.mutations?.skipReadRepair === true) return;
    const merged = this.reconcileAll([...answers.values()]);
    for (const [node, set] of answers) {
      if (sameDots(set, merged)) continue;
      this.figures.readRepairs++;
      this.options.link.apply(node, key, merged, this.options.requestTimeoutMs).catch(() => undefined);
    }
  }

  private reconcileAll(sets: readonly SiblingSet[]): SiblingSet {
    return sets.reduce((merged, set) => this.options.replica.reconcile(merged, set), [] as SiblingSet);
  }

  private unavailable(what: 'read' | 'write', needed: number, answered: number): ImpulseError {
    this.figures.quorumFailures++;
    return new ImpulseError(
      'IMPULSE_ERR_QUORUM_UNAVAILABLE',
      `${answered} of the ${needed} replicas a ${what} needs answered within ${this.options.requestTimeoutMs} ms${what === 'write' && answered > 0 ? '; the replicas that answered keep the write' : ''}`,
      { details: { needed, answered } },
    );
  }
}

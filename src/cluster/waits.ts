/**
 * Bounded waits of the Raft service, on the `Clock`:
 *
 *   - `LeaderWatch`: wait until the group has a leader (for a request that
 *     arrives during an election), or until the leader changes (a request in
 *     flight at the old leader has to be given up). Notified by the group on
 *     every leader change, so waiting costs nothing per message.
 *   - `AppliedWaits`: wait until the local state machine has applied an index
 *     (a follower's linearizable reads, after the leader named their read
 *     index; one wait per batch of reads, so few wait at once).
 *
 * Every wait has a deadline and each kind has a bound on how many may wait:
 * beyond it a new wait fails at once with the error the caller supplies.
 */
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import type { Clock, TimerHandle } from '../util/clock.js';

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  timer: TimerHandle | undefined;
}

/** A set of waiters with deadlines, settled by the owner; bounded. */
class WaiterSet<W extends Waiter> {
  readonly waiting = new Set<W>();

  constructor(
    private readonly clock: Clock,
    private readonly max: number,
    private readonly what: string,
  ) {}

  /** A new waiter built by `make`; `cancel` removes it (its promise then never settles). */
  add(make: (resolve: () => void, reject: (error: Error) => void) => Omit<W, 'timer'>, deadlineMs: number, onTimeout: () => Error): Cancellable {
    if (this.waiting.size >= this.max) {
      return { promise: Promise.reject(new ImpulseError('IMPULSE_ERR_OVERLOADED', `${this.max} requests are already waiting for ${this.what} on this node`)), cancel: () => {} };
    }
    let waiter!: W;
    const promise = new Promise<void>((resolve, reject) => {
      waiter = { ...make(resolve, reject), timer: undefined } as W;
      this.waiting.add(waiter);
      const delayMs = Math.max(0, deadlineMs - this.clock.now());
      waiter.timer = this.clock.setTimer(delayMs, () => this.settle(waiter, onTimeout()));
    });
    return {
      promise,
      cancel: () => {
        if (this.waiting.delete(waiter)) waiter.timer?.cancel();
      },
    };
  }

  /** Resolves `waiter` (error null) or rejects it; a settled waiter is ignored. */
  settle(waiter: W, error: Error | null): void {
    if (!this.waiting.delete(waiter)) return;
    waiter.timer?.cancel();
    if (error === null) waiter.resolve();
    else waiter.reject(error);
  }

  failAll(error: Error): void {
    for (const waiter of [...this.waiting]) this.settle(waiter, error);
  }
}

/** A wait that its owner may give up. */
export interface Cancellable {
  readonly promise: Promise<void>;
  cancel(): void;
}

const SETTLED: Cancellable = { promise: Promise.resolve(), cancel: () => {} };

interface LeaderWaiter extends Waiter {
  /** Resolve once the leader is known and differs from this (0: any leader). */
  readonly notLeader: NodeId;
  readonly notTerm: number;
}

export class LeaderWatch {
  private readonly waiters: WaiterSet<LeaderWaiter>;
  private leader: NodeId = 0;
  private term = 0;

  constructor(clock: Clock, waitersMax: number) {
    this.waiters = new WaiterSet(clock, waitersMax, 'a leader');
  }

  /** The group's leader (0: none) and term changed. */
  notify(leader: NodeId, term: number): void {
    this.leader = leader;
    this.term = term;
    if (leader === 0) return;
    for (const waiter of [...this.waiters.waiting]) {
      if (leader !== waiter.notLeader || term !== waiter.notTerm) this.waiters.settle(waiter, null);
    }
  }

  /**
   * The leader, once one is known: at once when `current()` (the group's live view) names one,
   * else after a notification names one and `current()` still does; rejects with `onTimeout()` at
   * the deadline. The live view wins over the last notification, which can lag it: the group
   * notifies after ticks, messages and applies, while the core can lose its leader in between
   * (for example through input the driver had queued and processes later). Trusting the stale
   * notification made a request loop on resolved promises without ever yielding, starving the
   * process (found by `impulse chaos`); here every round waits for a notification or the deadline.
   */
  async awaitLeader(current: () => NodeId, deadlineMs: number, onTimeout: () => Error): Promise<NodeId> {
    for (;;) {
      const leader = current();
      if (leader !== 0) return leader;
      this.leader = 0; // the last notification named a leader the group no longer has
      await this.leaderKnown(deadlineMs, onTimeout);
    }
  }

  /** Resolves at once when a leader is known, else when one is; rejects with `onTimeout()` at the deadline. */
  leaderKnown(deadlineMs: number, onTimeout: () => Error): Promise<void> {
    if (this.leader !== 0) return Promise.resolve();
    return this.waiters.add((resolve, reject) => ({ resolve, reject, notLeader: 0, notTerm: -1 }), deadlineMs, onTimeout).promise;
  }

  /**
   * Resolves once a leader other than `leader` in `term` is known (a new
   * term, or another node), rejects at the deadline. For racing a request in
   * flight at `leader` against a change of leadership; cancel it when the
   * request settles first.
   */
  changedFrom(leader: NodeId, term: number, deadlineMs: number, onTimeout: () => Error): Cancellable {
    if (this.leader !== 0 && (this.leader !== leader || this.term !== term)) return SETTLED;
    return this.waiters.add((resolve, reject) => ({ resolve, reject, notLeader: leader, notTerm: term }), deadlineMs, onTimeout);
  }

  failAll(error: Error): void {
    this.waiters.failAll(error);
  }

  get waiting(): number {
    return this.waiters.waiting.size;
  }
}

interface AppliedWaiter extends Waiter {
  readonly index: number;
}

export class AppliedWaits {
  private readonly waiters: WaiterSet<AppliedWaiter>;
  private applied = 0;

  constructor(clock: Clock, waitersMax: number) {
    this.waiters = new WaiterSet(clock, waitersMax, 'their index to be applied');
  }

  /** The state machine applied up to `index`. */
  notify(index: number): void {
    this.applied = Math.max(this.applied, index);
    for (const waiter of [...this.waiters.waiting]) if (waiter.index <= this.applied) this.waiters.settle(waiter, null);
  }

  /** Resolves once `index` is applied; rejects with `onTimeout()` at the deadline. */
  until(index: number, deadlineMs: number, onTimeout: () => Error): Promise<void> {
    if (index <= this.applied) return Promise.resolve();
    return this.waiters.add((resolve, reject) => ({ resolve, reject, index }), deadlineMs, onTimeout).promise;
  }

  failAll(error: Error): void {
    this.waiters.failAll(error);
  }

  get waiting(): number {
    return this.waiters.waiting.size;
  }
}

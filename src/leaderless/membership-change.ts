/**
 * The claimant's side of a membership change (membership.ts has the steps):
 * `run(members)` sends `pending`, waits a request time, sends `transfer`,
 * then `commit`, each to every member of the old and the new membership,
 * this member included. A member that fails `pending` or `transfer` aborts
 * the change everywhere (IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED naming
 * it); the data it had moved stays where it went (harmless extra copies,
 * cleaned up by the next change). A `commit` that does not reach a member
 * is retried; if one still misses it, the error says so and that member keeps
 * the pending ring (its writes still reach both owner sets, its reads use the
 * old owners) until it hears, in a heartbeat answer, a peer that committed
 * the change and commits it itself (membership-gossip.ts). `progress()`
 * reports the last change (its step, how long it ran, how it ended) for
 * `/cluster`.
 *
 * A FORCED removal (`run(members, { force: true })`, the operator's way out
 * when a member is down for good, as Cassandra's `nodetool removenode`):
 * every member removed must be `down` in this member's failure detector and
 * the change may only remove. Its steps skip the removed members — only the
 * remaining ones take pending, transfer and commit — so nothing comes from
 * them; the remaining members' transfer step pushes every key they hold to
 * the key's new owners (the surviving replicas stream, as Cassandra's
 * removenode does). After the commit each remaining member is sent `repair`
 * and runs an anti-entropy repair with its peers in the background, which
 * brings each new owner every key a surviving replica holds.
 */
import { isImpulseError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import type { NodeId } from './dvv.js';
import type { Liveness } from './failure-detector.js';
import { type MemberAddress, type MembershipPhase, type Membership, checkMembers, membershipRejected, sameMembers } from './membership.js';

/** How a claimant reaches a member with one step (this member's own handler for itself). */
export type SendStep = (to: NodeId, phase: MembershipPhase, epoch: number, members: readonly MemberAddress[], timeoutMs: number) => Promise<void>;

export interface MembershipChangeOptions {
  readonly membership: Membership;
  readonly send: SendStep;
  readonly clock: Clock;
  /** Per-step timeout of `pending`, `commit` and `abort`, ms; also the pause of step 2. */
  readonly requestTimeoutMs: number;
  /** How long `transfer` may take on a member, ms. */
  readonly transferTimeoutMs: number;
  /** N: a change may not leave fewer members. */
  readonly replicas: number;
  readonly self: NodeId;
  /** What this member's failure detector says of a current member: a change is refused at once while one is `down`. */
  readonly liveness: (id: NodeId) => Liveness;
}

/** Times the claimant sends `commit` to a member that did not confirm it, and `pending` or `transfer` to one that did not answer. */
const COMMIT_ATTEMPTS = 3;
const STEP_ATTEMPTS = 3;

/** Where a change is: pending, settle (one request time), transfer, commit (membership.ts). */
export type ChangeStep = 'pending' | 'settle' | 'transfer' | 'commit';
type Step = ChangeStep;

/** The last change a claimant drove, as `/cluster` shows it (src/protocol/cluster-view.ts has the wire shape). */
export interface ChangeProgress {
  readonly epoch: number;
  readonly members: readonly NodeId[];
  readonly state: 'running' | 'done' | 'failed';
  readonly step: ChangeStep;
  readonly elapsedMs: number;
  readonly error?: { readonly code: string; readonly message: string; readonly member?: number };
}

/** How a change is run. */
export interface ChangeOptions {
  /** Remove members that are down without their steps (above); refused if one is not down, or if the change adds a member. */
  readonly force?: boolean;
}

export class MembershipChange {
  private running = false;
  /** The last change run here, for `/cluster` (`progress()`). */
  private last: { epoch: number; members: number[]; state: ChangeProgress['state']; step: Step; startedMs: number; endedMs?: number; error?: ChangeProgress['error'] } | undefined;

  constructor(private readonly options: MembershipChangeOptions) {}

  /** The last change this member drove (running or ended), or undefined if none since it started. */
  progress(): ChangeProgress | undefined {
    const last = this.last;
    if (last === undefined) return undefined;
    const { endedMs, startedMs, ...view } = last;
    return { ...view, elapsedMs: Math.max(0, (endedMs ?? this.options.clock.now()) - startedMs) };
  }

  /** Changes the membership to `members` (validated here); resolves once every member committed it (every remaining one, when forced). */
  async run(next: readonly MemberAddress[], options: ChangeOptions = {}): Promise<void> {
    const { membership } = this.options;
    const members = checkMembers(next);
    if (members.length < this.options.replicas) throw membershipRejected(`the cluster keeps ${this.options.replicas} replicas of each key; it cannot have fewer members`, { replicas: this.options.replicas });
    if (sameMembers(members, membership.view.members)) throw membershipRejected('those are the current members: there is nothing to change');
    if (this.running || membership.view.pending !== undefined) throw membershipRejected('a membership change is under way on this member; retry when it ends');
    const skipped = options.force === true ? this.forcedRemovals(members) : [];
    // Every current member (but those a forced removal skips) must take part; one this member's detector holds down would
    // only fail the pending step after its retries, so the change is refused at once, naming it (docs/leaderless.md).
    const down = membership.view.members.find((member) => member.id !== this.options.self && !skipped.includes(member.id) && this.options.liveness(member.id) === 'down');
    if (down !== undefined) throw membershipRejected(`member ${down.id} is down (no heartbeat answered); a change needs every member to take part — bring it back, then retry`, { member: down.id });
    this.running = true;
    const epoch = membership.view.epoch + 1;
    const last = { epoch, members: members.map((member) => member.id), state: 'running' as ChangeProgress['state'], step: 'pending' as Step, startedMs: this.options.clock.now() };
    this.last = last;
    try {
      await this.steps(epoch, members, skipped, (step) => (last.step = step));
      this.last = { ...last, state: 'done', endedMs: this.options.clock.now() };
    } catch (error) {
      const reason = isImpulseError(error) ? { code: error.code, message: error.message, ...(typeof error.details?.['member'] === 'number' ? { member: error.details['member'] } : {}) } : { code: 'IMPULSE_ERR_INTERNAL', message: String(error) };
      this.last = { ...last, state: 'failed', endedMs: this.options.clock.now(), error: reason };
      throw error;
    } finally {
      this.running = false;
    }
    // The new owners of the removed members' ranges catch up from the surviving replicas (best effort: background
    // anti-entropy and read repair cover a member this misses).
    if (skipped.length > 0) await Promise.allSettled(members.map((member) => this.options.send(member.id, 'repair', epoch, members, this.options.requestTimeoutMs)));
  }

  /**
   * The members a forced change to `members` removes, each checked to be
   * `down` here; refuses a forced change that adds a member or removes one
   * that is not down (it can hand its keys off: a normal remove).
   */
  private forcedRemovals(members: readonly MemberAddress[]): NodeId[] {
    const current = this.options.membership.view.members;
    const added = members.find((member) => !current.some((known) => known.id === member.id));
    if (added !== undefined) throw membershipRejected(`a forced change only removes members; member ${added.id} would be added — add it with a normal change`, { member: added.id });
    const removed = current.filter((member) => !members.some((kept) => kept.id === member.id)).map((member) => member.id);
    for (const id of removed) {
      const liveness = id === this.options.self ? 'up' : this.options.liveness(id);
      if (liveness !== 'down') throw membershipRejected(`member ${id} is ${liveness}, not down: --force removes only a member that is down for good; remove it without --force, so it hands its keys to their new owners`, { member: id });
    }
    return removed;
  }

  /** The four steps (membership.ts) on every member but `skipped`, `onStep` told as each begins; a failure before the commit aborts the change everywhere. */
  private async steps(epoch: number, members: readonly MemberAddress[], skipped: readonly NodeId[], onStep: (step: Step) => void): Promise<void> {
    const { membership, requestTimeoutMs, transferTimeoutMs } = this.options;
    const everyone = [...new Set([...membership.view.members, ...members].map((member) => member.id))].filter((id) => !skipped.includes(id));
    try {
      await this.all(everyone, 'pending', epoch, members, requestTimeoutMs);
      onStep('settle');
      await new Promise<void>((resolve) => this.options.clock.setTimer(requestTimeoutMs, resolve));
      onStep('transfer');
      await this.all(everyone, 'transfer', epoch, members, transferTimeoutMs);
    } catch (error) {
      await Promise.allSettled(everyone.map((id) => this.options.send(id, 'abort', epoch, members, requestTimeoutMs)));
      throw error;
    }
    onStep('commit');
    await this.commitEverywhere(everyone, epoch, members);
  }

  private async commitEverywhere(everyone: readonly NodeId[], epoch: number, members: readonly MemberAddress[]): Promise<void> {
    let missing = [...everyone];
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS && missing.length > 0; attempt++) {
      const results = await Promise.allSettled(missing.map((id) => this.options.send(id, 'commit', epoch, members, this.options.requestTimeoutMs)));
      missing = missing.filter((_, index) => results[index]!.status === 'rejected');
    }
    if (missing.length > 0) {
      throw membershipRejected(`the change (epoch ${epoch}) is committed, but member ${missing.join(', ')} did not confirm it; it commits the change itself once it hears a peer that did (membership-gossip.ts)`, { member: missing[0]!, epoch });
    }
  }

  /**
   * Sends one step to every member; rejects naming the first that failed. A
   * member that did not answer (a lost message, a timeout) is asked again, up
   * to STEP_ATTEMPTS times in all — `pending` and `transfer` are idempotent —
   * while a refusal (IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED) is final.
   */
  private async all(ids: readonly NodeId[], phase: MembershipPhase, epoch: number, members: readonly MemberAddress[], timeoutMs: number): Promise<void> {
    const sendWithRetry = async (id: NodeId): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.options.send(id, phase, epoch, members, timeoutMs);
        } catch (error) {
          if (attempt >= STEP_ATTEMPTS || isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED')) throw error;
        }
      }
    };
    const results = await Promise.allSettled(ids.map(sendWithRetry));
    const failed = results.findIndex((result) => result.status === 'rejected');
    if (failed < 0) return;
    const reason = (results[failed] as PromiseRejectedResult).reason as unknown;
    const why = isImpulseError(reason) ? reason.message : String(reason);
    throw membershipRejected(`member ${ids[failed]!} did not take part in the ${phase} step (${why}); the change was aborted`, { member: ids[failed]!, epoch });
  }
}

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
 * old owners) — not repaired automatically yet (docs/leaderless.md).
 */
import { isImpulseError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import type { NodeId } from './dvv.js';
import { type MemberAddress, type MembershipPhase, type Membership, checkMembers, membershipRejected } from './membership.js';

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
}

const COMMIT_ATTEMPTS = 3;

export class MembershipChange {
  private running = false;

  constructor(private readonly options: MembershipChangeOptions) {}

  /** Changes the membership to `members` (validated here); resolves once every member committed it. */
  async run(next: readonly MemberAddress[]): Promise<void> {
    const { membership, requestTimeoutMs, transferTimeoutMs } = this.options;
    const members = checkMembers(next);
    if (members.length < this.options.replicas) throw membershipRejected(`the cluster keeps ${this.options.replicas} replicas of each key; it cannot have fewer members`, { replicas: this.options.replicas });
    if (this.running || membership.view.pending !== undefined) throw membershipRejected('a membership change is under way on this member; retry when it ends');
    this.running = true;
    try {
      const epoch = membership.view.epoch + 1;
      const everyone = [...new Set([...membership.view.members, ...members].map((member) => member.id))];
      try {
        await this.all(everyone, 'pending', epoch, members, requestTimeoutMs);
        await new Promise<void>((resolve) => this.options.clock.setTimer(requestTimeoutMs, resolve));
        await this.all(everyone, 'transfer', epoch, members, transferTimeoutMs);
      } catch (error) {
        await Promise.allSettled(everyone.map((id) => this.options.send(id, 'abort', epoch, members, requestTimeoutMs)));
        throw error;
      }
      await this.commitEverywhere(everyone, epoch, members);
    } finally {
      this.running = false;
    }
  }

  private async commitEverywhere(everyone: readonly NodeId[], epoch: number, members: readonly MemberAddress[]): Promise<void> {
    let missing = [...everyone];
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS && missing.length > 0; attempt++) {
      const results = await Promise.allSettled(missing.map((id) => this.options.send(id, 'commit', epoch, members, this.options.requestTimeoutMs)));
      missing = missing.filter((_, index) => results[index]!.status === 'rejected');
    }
    if (missing.length > 0) {
      throw membershipRejected(`the change (epoch ${epoch}) is committed, but member ${missing.join(', ')} did not confirm it and still reads from the old owners`, { member: missing[0]!, epoch });
    }
  }

  /** Sends one step to every member; rejects naming the first that failed. */
  private async all(ids: readonly NodeId[], phase: MembershipPhase, epoch: number, members: readonly MemberAddress[], timeoutMs: number): Promise<void> {
    const results = await Promise.allSettled(ids.map((id) => this.options.send(id, phase, epoch, members, timeoutMs)));
    const failed = results.findIndex((result) => result.status === 'rejected');
    if (failed < 0) return;
    const reason = (results[failed] as PromiseRejectedResult).reason as unknown;
    const why = isImpulseError(reason) ? reason.message : String(reason);
    throw membershipRejected(`member ${ids[failed]!} did not take part in the ${phase} step (${why}); the change was aborted`, { member: ids[failed]!, epoch });
  }
}

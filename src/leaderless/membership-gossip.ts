/**
 * Light gossip on the failure detector's heartbeats: every ping answer
 * carries the answerer's committed membership epoch and its client URL
 * (peer-link.ts). From them a member
 *
 *   - learns every other member's client URL (shown in `/cluster`), and
 *   - brings itself forward when it missed a change's commit step: it holds
 *     the change of epoch E as pending while a peer answers that it has
 *     committed E. A peer commits E only after the claimant saw every member
 *     finish the transfer step (membership-change.ts), so committing E is then
 *     as safe here as the claimant's own commit message would have been. The
 *     member pulls the peer's committed membership first and commits only if
 *     it names exactly the pending members (the same change, not another one
 *     of that epoch); one pull at a time, so at most one request per
 *     heartbeat.
 *
 *   - brings itself forward when it missed an ABORT: an aborted change
 *     still uses up its epoch (membership.ts `abort`), so a peer at epoch E
 *     naming the old members says the change of epoch E was aborted. A
 *     member holding E pending aborts it; one that never recorded E (no
 *     pending) takes the epoch. An abort and a commit of one change are
 *     exclusive (the claimant sends abort only before any commit), so the
 *     pulled answer is unambiguous.
 *
 *   - learns that it was REMOVED: a peer at a later epoch whose committed
 *     membership does not name this member (a forced removal while this
 *     member was down, membership-change.ts). It takes that membership — so
 *     it is no longer a member and never serves on its old ring — and hands
 *     every key it holds to the owners (`removed`), as a member that left.
 *
 * What it does not do: a member that missed a change entirely (a peer is at
 * a later epoch with other members that include this one) only logs that it
 * is behind (docs/leaderless.md): it must be removed and re-added.
 */
import type { Logger } from 'pino';
import type { NodeId } from './dvv.js';
import { type MemberAddress, type Membership, sameMembers } from './membership.js';
import type { PeerLink, PeerStatus } from './peer-link.js';

export interface MembershipGossipOptions {
  readonly self: NodeId;
  readonly membership: Membership;
  readonly link: Pick<PeerLink, 'committedMembership'>;
  /** Commits the pending change of `epoch` here (the node's `commit` step). */
  readonly commit: (epoch: number) => Promise<void>;
  /** Aborts the pending change of `epoch` to `members` here (the node's `abort` step). */
  readonly abort: (epoch: number, members: readonly MemberAddress[]) => Promise<void>;
  /** Told once this member took a peer's membership that removed it. */
  readonly removed: () => void;
  readonly logger: Logger;
  readonly timeoutMs: number;
}

/** A client URL as a peer may announce it: http(s), a host, no path. Anything else is not shown. */
const CLIENT_URL = /^https?:\/\/[^/?#\s]+$/;

export class MembershipGossip {
  private readonly clientUrls = new Map<NodeId, string>();
  private pulling = false;
  /** The last peer epoch this member checked it is behind of (one pull per epoch). */
  private checkedBehind = -1;
  /** Commits and aborts pulled from a peer; pulls refused because the peer committed other members for that epoch. */
  readonly figures = { commitsPulled: 0, commitsRefused: 0, abortsPulled: 0, removalsPulled: 0 };

  constructor(private readonly options: MembershipGossipOptions) {}

  /** What `from` answered to a ping (undefined: a member of an earlier version, or nothing usable). */
  heard(from: NodeId, status: PeerStatus | undefined): void {
    if (status === undefined) return;
    if (CLIENT_URL.test(status.clientUrl)) this.clientUrls.set(from, status.clientUrl);
    const { view } = this.options.membership;
    if (this.pulling) return;
    if (view.pending !== undefined && status.epoch === view.pending.epoch) void this.pull(from, (committed) => this.resolvePending(from, committed));
    else if (status.epoch > view.epoch && status.epoch !== this.checkedBehind) {
      // Marked checked once the pull answered: a pull that failed is retried at the next heartbeat.
      void this.pull(from, (committed) => {
        this.checkedBehind = status.epoch;
        return this.catchUpAbort(from, committed);
      });
    }
  }

  /** The client URL member `id` announced, if any. */
  clientUrl(id: NodeId): string | undefined {
    return this.clientUrls.get(id);
  }

  /** Forgets members that left. */
  retain(members: readonly NodeId[]): void {
    for (const id of [...this.clientUrls.keys()]) if (!members.includes(id)) this.clientUrls.delete(id);
  }

  /** Fetches `from`'s committed membership and hands it to `then`; one pull at a time, failures left to the next heartbeat. */
  private async pull(from: NodeId, then: (committed: { epoch: number; members: readonly MemberAddress[] }) => Promise<void>): Promise<void> {
    this.pulling = true;
    try {
      await then(await this.options.link.committedMembership(from, this.options.timeoutMs));
    } catch (error) {
      this.options.logger.debug({ peer: from, err: error }, 'pulling a committed membership failed; the next heartbeat retries');
    } finally {
      this.pulling = false;
    }
  }

  /**
   * The peer committed the epoch this member holds pending: with the pending
   * members, the change completed (commit it); with this member's current
   * members, it was aborted (abort it); anything else is another change for
   * that epoch (refused, logged).
   */
  private async resolvePending(from: NodeId, committed: { epoch: number; members: readonly MemberAddress[] }): Promise<void> {
    const { view } = this.options.membership;
    const pending = view.pending;
    if (pending === undefined || committed.epoch !== pending.epoch) return;
    if (sameMembers(committed.members, pending.members)) {
      await this.options.commit(pending.epoch);
      this.figures.commitsPulled++;
      this.options.logger.info({ peer: from, epoch: pending.epoch }, 'committed a membership change whose commit step this member had missed (pulled from a peer)');
    } else if (sameMembers(committed.members, view.members)) {
      await this.options.abort(pending.epoch, pending.members);
      this.figures.abortsPulled++;
      this.options.logger.info({ peer: from, epoch: pending.epoch }, 'aborted a membership change whose abort this member had missed (a peer holds that epoch with the old members)');
    } else {
      this.figures.commitsRefused++;
      this.options.logger.warn({ peer: from, epoch: pending.epoch }, 'a peer committed a different membership for the epoch this member holds pending; not committing it');
    }
  }

  /**
   * The peer is at a later epoch: if it names this member's members (and
   * nothing is pending here), the epochs between were aborted changes this
   * member never recorded (take the epoch); if it does not name this member,
   * this member was removed (take the membership); else this member missed a
   * whole change.
   */
  private async catchUpAbort(from: NodeId, committed: { epoch: number; members: readonly MemberAddress[] }): Promise<void> {
    const { membership, self } = this.options;
    if (await membership.adoptAbortedEpoch(committed.epoch, committed.members)) {
      this.figures.abortsPulled++;
      return;
    }
    if (await membership.adoptRemoval(self, committed.epoch, committed.members)) {
      this.figures.removalsPulled++;
      this.options.logger.warn({ peer: from, epoch: committed.epoch, members: committed.members.map((member) => member.id) }, 'this member was removed from the cluster while it was away (a forced removal): it is no longer a member and hands its keys to the owners; to serve again, wipe its data directory and add it as a new member (docs/leaderless.md)');
      this.options.removed();
      return;
    }
    const { view } = this.options.membership;
    if (committed.epoch <= view.epoch) return;
    this.options.logger.warn({ peer: from, peerEpoch: committed.epoch, epoch: view.epoch, pendingEpoch: view.pending?.epoch }, 'a peer has a newer membership this member never took part in; remove and re-add this member (docs/leaderless.md)');
  }
}

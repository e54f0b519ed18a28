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
 * What it does not do: a member that missed a change entirely (no pending
 * change of that epoch) or holds a pending change that was aborted elsewhere
 * only logs that it is behind (docs/leaderless.md); the change protocol
 * keeps both rare (a change needs every member's step 1; an abort is sent to
 * every member).
 */
import type { Logger } from 'pino';
import type { NodeId } from './dvv.js';
import { type Membership, sameMembers } from './membership.js';
import type { PeerLink, PeerStatus } from './peer-link.js';

export interface MembershipGossipOptions {
  readonly membership: Membership;
  readonly link: Pick<PeerLink, 'committedMembership'>;
  /** Commits the pending change of `epoch` here (the node's `commit` step). */
  readonly commit: (epoch: number) => Promise<void>;
  readonly logger: Logger;
  readonly timeoutMs: number;
}

/** A client URL as a peer may announce it: http(s), a host, no path. Anything else is not shown. */
const CLIENT_URL = /^https?:\/\/[^/?#\s]+$/;

export class MembershipGossip {
  private readonly clientUrls = new Map<NodeId, string>();
  private pulling = false;
  /** The last epoch this member warned it is behind of (one warning per epoch). */
  private warnedBehind = -1;
  /** Commits pulled from a peer; pulls refused because the peer committed other members for that epoch. */
  readonly figures = { commitsPulled: 0, commitsRefused: 0 };

  constructor(private readonly options: MembershipGossipOptions) {}

  /** What `from` answered to a ping (undefined: a member of an earlier version, or nothing usable). */
  heard(from: NodeId, status: PeerStatus | undefined): void {
    if (status === undefined) return;
    if (CLIENT_URL.test(status.clientUrl)) this.clientUrls.set(from, status.clientUrl);
    const { view } = this.options.membership;
    if (view.pending !== undefined && status.epoch === view.pending.epoch) {
      if (!this.pulling) void this.pullCommit(from, view.pending.epoch);
    } else if (status.epoch > view.epoch && status.epoch !== this.warnedBehind) {
      this.warnedBehind = status.epoch;
      this.options.logger.warn({ peer: from, peerEpoch: status.epoch, epoch: view.epoch, pendingEpoch: view.pending?.epoch }, 'a peer has a newer membership this member never took part in; remove and re-add this member (docs/leaderless.md)');
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

  private async pullCommit(from: NodeId, epoch: number): Promise<void> {
    this.pulling = true;
    try {
      const committed = await this.options.link.committedMembership(from, this.options.timeoutMs);
      const pending = this.options.membership.view.pending;
      if (pending === undefined || pending.epoch !== epoch || committed.epoch !== epoch) return;
      if (!sameMembers(committed.members, pending.members)) {
        this.figures.commitsRefused++;
        this.options.logger.warn({ peer: from, epoch }, 'a peer committed a different membership for the epoch this member holds pending; not committing it');
        return;
      }
      await this.options.commit(epoch);
      this.figures.commitsPulled++;
      this.options.logger.info({ peer: from, epoch }, 'committed a membership change whose commit step this member had missed (pulled from a peer)');
    } catch (error) {
      this.options.logger.debug({ peer: from, epoch, err: error }, 'pulling a committed membership failed; the next heartbeat retries');
    } finally {
      this.pulling = false;
    }
  }
}

/**
 * Node liveness as the host's timer sees it: when each peer node was last
 * heard from (any message at all), in host ticks. Quiesced groups send no
 * heartbeats, so a follower of a quiesced group learns that its leader died
 * from here instead: the host pings every peer once per heartbeat interval
 * (one message per node pair, however many groups it shares with it — the
 * coalesced heartbeat), and wakes the groups whose leader's node has been
 * silent for an election timeout (CockroachDB's quiescence leans on node
 * liveness the same way).
 *
 * Pure bookkeeping, no timers: the host calls `tick()` on its timer and
 * `heard(id)` for every message it receives.
 */
import type { NodeId } from '../raft/types.js';

/** The node-level ping's channel (group 0, empty body). */
export const LIVENESS_CHANNEL = 'liveness';

export class NodeLiveness {
  private ticks = 0;
  private readonly lastHeardTick = new Map<NodeId, number>();
  /** The transport's failed-dial count per peer, as last seen by `dialsFailing`. */
  private readonly dialFailures = new Map<NodeId, number>();

  /** `silentTicksMax`: a peer unheard for more ticks than this is silent (≥ 1). */
  constructor(private readonly silentTicksMax: number) {}

  /** One tick of the host's timer. */
  tick(): void {
    this.ticks++;
  }

  /** A message from `id` arrived. */
  heard(id: NodeId): void {
    this.lastHeardTick.set(id, this.ticks);
  }

  /**
   * True when `id` has not been heard from for more than `silentTicksMax`
   * ticks. A peer never heard from counts from this host's start, so a host
   * that restarts gives its peers one full timeout to speak first.
   */
  silent(id: NodeId): boolean {
    return this.ticks - (this.lastHeardTick.get(id) ?? 0) > this.silentTicksMax;
  }

  /** Ticks since `id` was last heard from (a peer never heard from: since this host's start). */
  silentTicks(id: NodeId): number {
    return this.ticks - (this.lastHeardTick.get(id) ?? 0);
  }

  /**
   * Fed with the transport's count of failed dials to `id`: true when a dial
   * failed since the last call (its peer port refuses, or no connection came
   * in time) and nothing has been heard from `id` for more than `quietTicks`
   * ticks — together, the sign that its process is gone (a kill -9 closes its
   * connections and its port at once). A hint for the groups it leads
   * (RaftGroup.leaderUnreachable), never a verdict.
   */
  dialsFailing(id: NodeId, connectFailures: number, quietTicks: number): boolean {
    const before = this.dialFailures.get(id);
    this.dialFailures.set(id, connectFailures);
    return before !== undefined && connectFailures > before && this.ticks - (this.lastHeardTick.get(id) ?? 0) > quietTicks;
  }

  /** Forgets peers that are no longer in the address book (bounds the maps). */
  retain(ids: ReadonlySet<NodeId>): void {
    for (const id of this.lastHeardTick.keys()) if (!ids.has(id)) this.lastHeardTick.delete(id);
    for (const id of this.dialFailures.keys()) if (!ids.has(id)) this.dialFailures.delete(id);
  }
}

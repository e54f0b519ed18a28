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

  /** Forgets peers that are no longer in the address book (bounds the map). */
  retain(ids: ReadonlySet<NodeId>): void {
    for (const id of this.lastHeardTick.keys()) if (!ids.has(id)) this.lastHeardTick.delete(id);
  }
}

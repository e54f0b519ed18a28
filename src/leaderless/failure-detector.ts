/**
 * Failure detection by heartbeats with suspicion. Every `heartbeatMs` this
 * node pings each other member (peer-link ping, timeout = heartbeatMs); any
 * answer from a member — a ping or any other leaderless call — counts as
 * hearing from it. A member not heard from for `suspectAfterMs` is `suspect`,
 * for `downAfterMs` `down`; hearing from it again makes it `up` at once.
 *
 * What the states do: the coordinator sends to `down` owners nothing but goes
 * straight to a fallback (sloppy quorum) instead of waiting for a timeout;
 * `suspect` owners are still tried (a slow node is not a dead one), and hint
 * delivery waits until an owner is `up`. Each node decides alone (no gossip):
 * two nodes may briefly disagree, which costs a timeout, never correctness.
 * Shown in /cluster as each member's role.
 */
import type { Clock, TimerHandle } from '../util/clock.js';
import type { NodeId } from './dvv.js';

export type Liveness = 'up' | 'suspect' | 'down';

export interface DetectorOptions {
  readonly self: NodeId;
  readonly clock: Clock;
  readonly heartbeatMs: number;
  readonly suspectAfterMs: number;
  readonly downAfterMs: number;
  /** Sends one heartbeat; resolves when `to` answered. */
  readonly ping: (to: NodeId, timeoutMs: number) => Promise<void>;
}

export class FailureDetector {
  private readonly lastHeard = new Map<NodeId, number>();
  private timer: TimerHandle | undefined;
  private stopped = false;

  constructor(
    private readonly options: DetectorOptions,
    private members: readonly NodeId[],
  ) {
    const now = options.clock.now();
    for (const id of members) this.lastHeard.set(id, now);
  }

  /** The members to watch (call when the membership changes); new ones start as `up`. */
  setMembers(members: readonly NodeId[]): void {
    this.members = members;
    const now = this.options.clock.now();
    for (const id of members) if (!this.lastHeard.has(id)) this.lastHeard.set(id, now);
    for (const id of [...this.lastHeard.keys()]) if (!members.includes(id)) this.lastHeard.delete(id);
  }

  start(): void {
    const round = (): void => {
      if (this.stopped) return;
      for (const id of this.members) {
        if (id === this.options.self) continue;
        this.options.ping(id, this.options.heartbeatMs).then(
          () => this.heard(id),
          () => undefined,
        );
      }
      this.timer = this.options.clock.setTimer(this.options.heartbeatMs, round);
    };
    round();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** Records that `id` answered something just now. */
  heard(id: NodeId): void {
    if (this.lastHeard.has(id)) this.lastHeard.set(id, this.options.clock.now());
  }

  liveness(id: NodeId): Liveness {
    if (id === this.options.self) return 'up';
    const silentMs = this.options.clock.now() - (this.lastHeard.get(id) ?? -Infinity);
    if (silentMs >= this.options.downAfterMs) return 'down';
    if (silentMs >= this.options.suspectAfterMs) return 'suspect';
    return 'up';
  }

  /** Milliseconds since `id` was last heard from (0 for this node). */
  silentMs(id: NodeId): number {
    if (id === this.options.self) return 0;
    return Math.max(0, this.options.clock.now() - (this.lastHeard.get(id) ?? 0));
  }
}

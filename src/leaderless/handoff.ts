/**
 * Hinted handoff: delivers the hints this node holds to their owners once
 * they are up again (Dynamo §4.6). Every `intervalMs` one round walks the
 * stored hints in (owner, key) order, at most `batchMax` per round, skips
 * owners the failure detector does not see `up`, sends each hint's set to its
 * owner (which merges it durably before answering) and then retires the hint
 * — unless a newer write for that owner arrived meanwhile, which keeps it for
 * the next round. A round that reaches the end starts the next one from the
 * beginning; a failed delivery just waits for a later round. Bounded work per
 * round; rounds never overlap. A hint for a member that has left the cluster
 * (membership.ts) goes to the key's current owners instead.
 */
import type { Logger } from 'pino';
import type { Clock } from '../util/clock.js';
import { Rounds } from '../util/rounds.js';
import type { NodeId } from './dvv.js';
import type { FailureDetector } from './failure-detector.js';
import type { PeerLink } from './peer-link.js';
import type { Replica } from './replica.js';
import type { EngineReplicaStore } from './replica-store.js';
import type { Ring } from './ring.js';

export interface HandoffOptions {
  readonly store: EngineReplicaStore;
  readonly replica: Replica;
  readonly link: PeerLink;
  readonly detector: FailureDetector;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly intervalMs: number;
  /** Hints sent per round (default 256). */
  readonly batchMax?: number;
  /** Per-delivery timeout, ms. */
  readonly timeoutMs: number;
  /** The current ring and N: a hint for a member that left goes to the key's current owners instead. */
  readonly ring: () => Ring;
  readonly replicas: number;
}

export class HintedHandoff {
  hintsDelivered = 0;
  deliveryFailures = 0;
  private after: { owner: NodeId; key: Buffer } | undefined;
  private readonly rounds: Rounds;

  constructor(private readonly options: HandoffOptions) {
    this.rounds = new Rounds(options.clock, options.intervalMs, () => this.round(), options.logger, 'hinted handoff round failed');
  }

  start(): void {
    this.rounds.start();
  }

  stop(): void {
    this.rounds.stop();
  }

  /** One round (also callable directly, e.g. by tests and the simulator). Resolves with the hints delivered. */
  async round(): Promise<number> {
    const batchMax = this.options.batchMax ?? 256;
    const hints = await this.options.store.hints(batchMax, this.after);
    this.after = hints.length < batchMax ? undefined : { owner: hints[hints.length - 1]!.owner, key: Buffer.from(hints[hints.length - 1]!.key) };
    let delivered = 0;
    await Promise.all(
      hints.map(async (hint) => {
        const ring = this.options.ring();
        const targets = ring.nodes.includes(hint.owner) ? [hint.owner] : ring.preferenceList(hint.key, this.options.replicas);
        if (this.rounds.isStopped || targets.some((target) => this.options.detector.liveness(target) !== 'up')) return;
        try {
          for (const target of targets) await this.options.link.apply(target, hint.key, hint.set, this.options.timeoutMs);
          if (await this.options.replica.retireHint(hint.owner, hint.key, hint.set)) {
            this.hintsDelivered++;
            delivered++;
          }
        } catch {
          this.deliveryFailures++;
        }
      }),
    );
    return delivered;
  }
}

/**
 * What every part of the simulator shares: virtual time on one event queue,
 * the run's one `SeededRandom`, the trace (hashed for the determinism check)
 * and the run's statistics.
 */
import { createHash } from 'node:crypto';
import { SeededRandom } from '../../src/util/random.js';
import type { Clock, TimerHandle } from '../../src/util/clock.js';
import { EventQueue } from './event-queue.js';

/** The kinds of fault the nemesis injects; counted in `SimStats.faults`. */
export const FAULT_KINDS = [
  'partition-isolate',
  'partition-leader',
  'partition-split',
  'partition-ring',
  'partition-bridge',
  'partition-one-way',
  'crash-one',
  'crash-leader',
  'crash-majority',
  'crash-all',
  'crash-after-vote',
  'crash-new-leader',
  'crash-during-save',
  'pause',
  'clock-skew',
  'lossy-network',
  'slow-snapshots',
  'membership-change',
  'leader-transfer',
  'request-burst',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SimStats {
  simulatedMs: number;
  events: number;
  messagesSent: number;
  messagesDropped: number;
  /** Coalesced heartbeat messages sent (each counted once in `messagesSent` too), and the heartbeats and responses they carried. */
  coalescedMessages: number;
  coalescedHeartbeats: number;
  faults: Record<FaultKind, number>;
  elections: number;
  snapshotsSent: number;
  snapshotsFailed: number;
  snapshotsInstalled: number;
  compactions: number;
  /** Crashes that hit a node while a save of its Raft log was not yet durable. */
  crashesWithUnsyncedSave: number;
  crashes: number;
  /** Nodes that learned they were removed and stopped. */
  removedStops: number;
  opsOk: number;
  opsUnknown: number;
  opsRejected: number;
  /** Requests refused with IMPULSE_ERR_RAFT_OVERLOADED (the overload paths). */
  opsOverloaded: number;
  /** Operations given to the linearizability checker. */
  opsChecked: number;
  /** Operations that completed in the quiet phase (liveness). */
  quietOpsOk: number;
}

export function emptyStats(): SimStats {
  const faults = {} as Record<FaultKind, number>;
  for (const kind of FAULT_KINDS) faults[kind] = 0;
  return {
    simulatedMs: 0,
    events: 0,
    messagesSent: 0,
    messagesDropped: 0,
    coalescedMessages: 0,
    coalescedHeartbeats: 0,
    faults,
    elections: 0,
    snapshotsSent: 0,
    snapshotsFailed: 0,
    snapshotsInstalled: 0,
    compactions: 0,
    crashesWithUnsyncedSave: 0,
    crashes: 0,
    removedStops: 0,
    opsOk: 0,
    opsUnknown: 0,
    opsRejected: 0,
    opsOverloaded: 0,
    opsChecked: 0,
    quietOpsOk: 0,
  };
}

export class SimWorld {
  readonly random: SeededRandom;
  readonly queue = new EventQueue();
  readonly stats = emptyStats();
  nowMs = 0;
  private readonly hash = createHash('sha256');
  private traceBuffer = '';
  /** The clock the drivers get: virtual time (they only read it, for latency figures). */
  readonly clock: Clock = {
    now: () => this.nowMs,
    setTimer: (delayMs: number, callback: () => void): TimerHandle => {
      let cancelled = false;
      this.at(delayMs, () => {
        if (!cancelled) callback();
      });
      return { cancel: () => (cancelled = true) };
    },
  };

  constructor(
    seed: number,
    private readonly traceSink?: (line: string) => void,
  ) {
    this.random = new SeededRandom(seed);
  }

  at(delayMs: number, run: () => void): void {
    this.queue.push(this.nowMs + delayMs, run);
  }

  trace(line: string): void {
    const full = `${this.nowMs.toFixed(3)} ${line}`;
    // Hash in chunks: one update per line costs more than the hashing itself.
    this.traceBuffer += full + '\n';
    if (this.traceBuffer.length > 65536) {
      this.hash.update(this.traceBuffer);
      this.traceBuffer = '';
    }
    this.traceSink?.(full);
  }

  traceHash(): string {
    return this.hash.update(this.traceBuffer).digest('hex');
  }

  pick<T>(values: readonly T[]): T {
    return values[this.random.int(values.length)]!;
  }

  shuffle<T>(values: readonly T[]): T[] {
    const copy = [...values];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = this.random.int(i + 1);
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }
}

/**
 * The smoothed load of each shard a member leads: requests a second (the
 * proposals and read-index reads its Raft driver served as the leader), as an
 * exponentially weighted moving average over time (time constant
 * `smoothingMs`, 10 s by default: a burst of one second moves it by a tenth
 * of the burst's rate; a steady rate is reached to 63% after 10 s, 95% after
 * 30 s). TiKV smooths its hot-region statistics the same way before it
 * schedules by them; a raw window (what the reports carried before) makes a
 * scheduler churn.
 *
 * Fed with the driver's counters (`observe`) whenever a reader looks — the
 * meta leader's ask for reports (shard-leads.ts) and the load-split checks
 * (shard-load-splits.ts) — at irregular intervals: each interval's rate r,
 * over dt ms, moves the average by (1 − e^(−dt/smoothingMs)) × (r − average),
 * so the weight of the past decays with time, not with the number of looks.
 *
 * A shard's average starts afresh (the first interval's rate) when this
 * member starts leading it, when its group was reopened (the counter went
 * back) and when its data changed other than by commands (`generation`: a
 * split or a snapshot) — after a split each part's load is its own, so a
 * parent that was hot does not split again on its past load.
 */
import type { Clock } from '../util/clock.js';

/** The averages' time constant by default, ms. */
export const LOAD_SMOOTHING_MS = 10_000;

interface LoadState {
  readonly requests: number;
  readonly atMs: number;
  readonly generation: number;
  /** null until two observations made a first interval. */
  readonly average: number | null;
}

export class ShardLoad {
  private readonly states = new Map<number, LoadState>();

  /** `smoothingMs` > 0. */
  constructor(
    private readonly clock: Clock,
    private readonly smoothingMs: number = LOAD_SMOOTHING_MS,
  ) {}

  /**
   * Records `shard`'s request counter `requests` (monotonic while its group
   * stays open) now, with its data `generation`; returns its smoothed
   * requests a second (rounded to 0.1), or null while it has no interval yet.
   */
  observe(shard: number, requests: number, generation: number): number | null {
    const now = this.clock.now();
    const previous = this.states.get(shard);
    if (previous === undefined || requests < previous.requests || generation !== previous.generation) {
      this.states.set(shard, { requests, atMs: now, generation, average: null });
      return null;
    }
    if (now <= previous.atMs) return rounded(previous.average);
    const dtMs = now - previous.atMs;
    const rate = ((requests - previous.requests) * 1000) / dtMs;
    const average = previous.average === null ? rate : previous.average + (1 - Math.exp(-dtMs / this.smoothingMs)) * (rate - previous.average);
    this.states.set(shard, { requests, atMs: now, generation, average });
    return rounded(average);
  }

  /** `shard`'s smoothed requests a second as of its last observation (null without one). */
  current(shard: number): number | null {
    return rounded(this.states.get(shard)?.average ?? null);
  }

  /** Forgets every shard not in `led` (this member no longer leads them: a later leadership starts afresh). */
  keepOnly(led: ReadonlySet<number>): void {
    for (const shard of this.states.keys()) if (!led.has(shard)) this.states.delete(shard);
  }
}

function rounded(average: number | null): number | null {
  return average === null ? null : Math.round(average * 10) / 10;
}

/**
 * The fault schedule of a chaos run: WHAT happens WHEN, to WHOM in abstract
 * terms ("the leader", "a random minority" as a seeded permutation of member
 * indexes), as a pure function of the seed, the duration, the node count and
 * the nemesis families. The same arguments give the same schedule, byte for
 * byte; what the faults then do to real processes is not deterministic (who
 * leads at that moment, how the kernel schedules), and docs/chaos.md says so.
 *
 * Shape (like Jepsen's nemesis generators): a quiet lead-in, then cycles of
 * one fault window (2–5 s; pauses long enough to outlast an election
 * timeout) followed by a quiet gap (1–3 s) after its heal, until the run's
 * end. The final heal of everything follows the last window.
 */
import { SeededRandom, type Random } from '../../src/util/random.js';

export const NEMESIS_FAMILIES = ['kill', 'pause', 'partition', 'link', 'clock', 'disk', 'membership'] as const;
export type NemesisFamily = (typeof NEMESIS_FAMILIES)[number];

/**
 * Whom a fault hits. `order` is a seeded permutation of member indexes
 * (0-based): random choices take members from it in order, skipping the
 * leader where the selector excludes it, so the choice is the seed's, not
 * the run's.
 */
export interface Target {
  readonly select: 'leader' | 'follower' | 'one' | 'minority' | 'majority' | 'all';
  readonly order: readonly number[];
}

/**
 * `slow-isolated`: the leader's clock runs slow and the leader is cut off from every other member
 * (Jepsen's partition combined with clock skew): its timers run at 0.1–0.2× its peers', so its
 * check-quorum takes 2.5–10 s to notice that it lost its followers, and it believes it leads for
 * seconds after the majority elected a new leader: the window in which a leader that skips the
 * read barrier serves stale reads.
 */
export type ClockEffect = 'jump' | 'strobe' | 'fast' | 'slow' | 'slow-isolated';

export type PartitionShape = 'isolate-leader' | 'halves' | 'ring' | 'bridge';

export type Fault =
  | { readonly kind: 'kill'; readonly target: Target }
  | { readonly kind: 'pause'; readonly target: Target }
  | { readonly kind: 'partition'; readonly shape: PartitionShape; readonly order: readonly number[] }
  | { readonly kind: 'link'; readonly effect: 'delay' | 'loss' | 'duplicate' | 'reorder'; readonly delayMs: number; readonly jitterMs: number; readonly rate: number }
  | { readonly kind: 'clock'; readonly effect: ClockEffect; readonly target: Target; readonly amountMs: number; readonly rate: number }
  | { readonly kind: 'disk'; readonly effect: 'fsync-error' | 'slow'; readonly target: Target; readonly spec: string }
  | { readonly kind: 'membership'; readonly effect: 'transfer-leader' | 'replace-member'; readonly order: readonly number[] };

export interface ScheduledFault {
  /** 1, 2, ... in time order. */
  readonly id: number;
  /** Seconds since the start of the workload. */
  readonly atS: number;
  readonly durationS: number;
  readonly fault: Fault;
}

export interface ScheduleOptions {
  readonly seed: number;
  readonly durationS: number;
  readonly nodes: number;
  readonly families: readonly NemesisFamily[];
  /** Quiet seconds before the first fault. Default 2. */
  readonly leadInS?: number;
}

export function makeSchedule(options: ScheduleOptions): ScheduledFault[] {
  const random = new SeededRandom(options.seed);
  const faults: ScheduledFault[] = [];
  if (options.families.length === 0) return faults;
  let at = options.leadInS ?? 2;
  for (;;) {
    const family = options.families[random.int(options.families.length)]!;
    const durationS = round(family === 'pause' ? uniform(random, 2, 4) : uniform(random, 2, 5));
    // Every window ends at least a second before the run does, so the final heal is the schedule's, not a cut.
    if (at + durationS > options.durationS - 1) break;
    faults.push({ id: faults.length + 1, atS: round(at), durationS, fault: drawFault(family, options.nodes, random) });
    at += durationS + uniform(random, 1, 3);
  }
  return faults;
}

function drawFault(family: NemesisFamily, nodes: number, random: Random): Fault {
  const order = permutation(nodes, random);
  switch (family) {
    case 'kill':
      return { kind: 'kill', target: { select: pick(random, ['one', 'leader', 'minority', 'majority', 'all'] as const), order } };
    case 'pause':
      return { kind: 'pause', target: { select: pick(random, ['leader', 'follower'] as const), order } };
    case 'partition':
      return { kind: 'partition', shape: pick(random, ['isolate-leader', 'halves', 'ring', 'bridge'] as const), order };
    case 'link': {
      const effect = pick(random, ['delay', 'loss', 'duplicate', 'reorder'] as const);
      return { kind: 'link', effect, delayMs: effect === 'delay' ? round(uniform(random, 20, 150)) : 0, jitterMs: effect === 'delay' ? round(uniform(random, 0, 50)) : 0, rate: effect === 'delay' ? 0 : round(uniform(random, 0.1, 0.4)) };
    }
    case 'clock': {
      const effect = pick(random, ['jump', 'strobe', 'fast', 'slow', 'slow-isolated'] as const);
      const target = { select: effect === 'slow-isolated' ? 'leader' : pick(random, ['leader', 'one'] as const), order };
      const rate = effect === 'fast' ? round(uniform(random, 2, 5)) : effect === 'slow' ? round(uniform(random, 0.2, 0.5)) : effect === 'slow-isolated' ? round(uniform(random, 0.1, 0.2)) : 1;
      return { kind: 'clock', effect, target, amountMs: effect === 'jump' ? round(uniform(random, 2000, 20_000)) : effect === 'strobe' ? round(uniform(random, 100, 500)) : 0, rate };
    }
    case 'disk': {
      const effect = pick(random, ['fsync-error', 'slow'] as const);
      const spec = effect === 'fsync-error' ? 'fsync-error@p=1' : `fsync-latency=${Math.round(uniform(random, 50, 300))}ms`;
      return { kind: 'disk', effect, target: { select: pick(random, ['leader', 'one'] as const), order }, spec };
    }
    case 'membership':
      return { kind: 'membership', effect: pick(random, ['transfer-leader', 'replace-member'] as const), order };
  }
}

/** Members `0..count-1` in a seeded order (Fisher–Yates). */
export function permutation(count: number, random: Random): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

function pick<T>(random: Random, choices: readonly T[]): T {
  return choices[random.int(choices.length)]!;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * The members a target names, given the current leader's index (or undefined
 * when there is none: 'leader' then falls back to the first of the order).
 * Sizes: one, leader and follower 1; minority ⌊(n−1)/2⌋; majority ⌊n/2⌋+1; all n.
 */
export function resolveTarget(target: Target, leader: number | undefined): number[] {
  const n = target.order.length;
  const followers = target.order.filter((index) => index !== leader);
  switch (target.select) {
    case 'leader':
      return [leader ?? target.order[0]!];
    case 'follower':
      return [followers[0]!];
    case 'one':
      return [target.order[0]!];
    case 'minority':
      return target.order.slice(0, Math.max(1, Math.floor((n - 1) / 2)));
    case 'majority':
      return target.order.slice(0, Math.floor(n / 2) + 1);
    case 'all':
      return [...target.order];
  }
}

/**
 * The directed links (from, to) a partition cuts, by member index:
 *   isolate-leader  the leader alone | the rest
 *   halves          the first ⌊n/2⌋ of the order | the rest (a random minority and majority)
 *   ring            each member sees its two neighbours in the order's ring (with 5, a
 *                   majority each, and no two members the same one; with 3 nothing is cut,
 *                   so 3 nodes get a bridge instead)
 *   bridge          two halves that both see one member in the middle
 */
export function partitionCuts(shape: PartitionShape, order: readonly number[], leader: number | undefined): Array<[number, number]> {
  const n = order.length;
  const sees = (a: number, b: number): boolean => {
    const i = order.indexOf(a);
    const j = order.indexOf(b);
    switch (shape) {
      case 'isolate-leader': {
        const isolated = leader ?? order[0]!;
        return (a === isolated) === (b === isolated);
      }
      case 'halves': {
        const small = Math.floor(n / 2);
        return i < small === j < small;
      }
      case 'ring': {
        if (n <= 3) return bridgeSees(i, j); // a ring of 3 cuts nothing
        const distance = Math.abs(i - j);
        return Math.min(distance, n - distance) <= 1;
      }
      case 'bridge':
        return bridgeSees(i, j);
    }
  };
  const bridgeSees = (i: number, j: number): boolean => {
    const middle = Math.floor(n / 2);
    if (i === middle || j === middle) return true;
    return i < middle === j < middle;
  };
  const cuts: Array<[number, number]> = [];
  for (const a of order) for (const b of order) if (a !== b && !sees(a, b)) cuts.push([a, b]);
  return cuts.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
}

/** One line per fault, for logs and the report. */
export function describeFault(fault: Fault): string {
  switch (fault.kind) {
    case 'kill':
    case 'pause':
      return `${fault.kind} ${fault.target.select}`;
    case 'partition':
      return `partition ${fault.shape}`;
    case 'link':
      return fault.effect === 'delay' ? `links delay ${fault.delayMs}±${fault.jitterMs} ms` : `links ${fault.effect} ${Math.round(fault.rate * 100)}%`;
    case 'clock':
      if (fault.effect === 'slow-isolated') return `clock slow ×${fault.rate} on the leader, isolated`;
      return `clock ${fault.effect} ${fault.effect === 'jump' || fault.effect === 'strobe' ? `${fault.amountMs} ms` : `×${fault.rate}`} on ${fault.target.select}`;
    case 'disk':
      return `disk ${fault.spec} on ${fault.target.select}`;
    case 'membership':
      return `${fault.effect} under a partition`;
  }
}

/** A real number uniform in [min, max) (Random.between draws integers). */
function uniform(random: Random, min: number, max: number): number {
  return min + random.next() * (max - min);
}

/**
 * Byte balance, the last phase of a placement plan (placement.ts): once
 * every live node holds ⌊T/N⌋ or ⌈T/N⌉ replicas, replicas move so that
 * every node's bytes come within the band around the mean — `tolerance` of
 * it, and at least `minBytes` either side, so small clusters do not move
 * replicas for a few kilobytes (TiKV's region score, CockroachDB's
 * range-size convergence) — without leaving that count band: the counts
 * win where both cannot hold (a node may stay outside the byte band when no
 * move or swap within the counts brings it in).
 *
 * How (deterministic): while some node is outside the band, take the pair
 * — heaviest donor first, lightest recipient first — of a node above the
 * band and one below the mean, or one above the mean and one below the
 * band, that has
 *   - a move: a shard of the donor the recipient lacks, of size in
 *     (0, gap), the closest to gap/2 (gap: their byte difference), when the
 *     donor is above ⌊T/N⌋ and the recipient below ⌈T/N⌉;
 *   - else a swap: shard s of the donor for shard t of the recipient (two
 *     moves, counts unchanged), s − t in (0, gap), the closest to gap/2.
 * Each step carries x in (0, gap) from the heavier node to the lighter one,
 * so the sum of squared deviations from the mean falls by 2x(gap − x) > 0:
 * the phase ends (a step cap guards against float dust). A plan on its own
 * result plans nothing while sizes stay the same (no flapping), and a pair
 * of nodes both inside the band is never a donor and recipient.
 *
 * `byteMovesBound` is the byte part of a lower bound on the moves of any
 * plan that brings every node into the band (see its comment).
 */
import type { NodeId } from '../raft/types.js';
import { partitionPoint } from '../util/bytes.js';
import type { Layout } from './placement-layout.js';

/** A node's bytes may differ from the mean by this fraction before bytes move (TiKV's tolerant-size-ratio plays this part): small enough to matter, wide enough not to churn on estimates. */
export const BYTE_TOLERANCE = 0.05;

/** One chosen step: a move, or a swap (two moves). */
type ByteStep = { readonly shard: number; readonly back?: number };

/**
 * Moves replicas between `layout`'s nodes until every node's bytes are
 * within the band of `width` around the mean or no step helps, keeping
 * every count in [low, high]; `emit` receives each move in order.
 */
export function balanceBytes(layout: Layout, { low, high }: CountBand, width: BandWidth, emit: (shard: number, from: NodeId, to: NodeId) => void): void {
  const nodes = layout.nodes;
  const band = bandAround(nodes.reduce((sum, id) => sum + layout.bytes.get(id)!, 0) / nodes.length, width);
  const stepsMax = 4 * [...layout.held.values()].reduce((sum, held) => sum + held.size, 0);
  for (let steps = 0; steps < stepsMax; steps++) {
    const found = nextStep(layout, band, low, high);
    if (found === undefined) return;
    const { donor, recipient, step } = found;
    layout.move(step.shard, donor, recipient);
    emit(step.shard, donor, recipient);
    if (step.back !== undefined) {
      layout.move(step.back, recipient, donor);
      emit(step.back, recipient, donor);
    }
  }
}

/** Replicas a node may hold. */
export interface CountBand {
  readonly low: number;
  readonly high: number;
}

/** The byte band's half-width: the larger of `tolerance` × the mean and `minBytes`. */
export interface BandWidth {
  readonly tolerance: number;
  readonly minBytes: number;
}

interface Band {
  readonly lower: number;
  readonly upper: number;
  readonly mean: number;
}

function bandAround(mean: number, { tolerance, minBytes }: BandWidth): Band {
  const half = Math.max(mean * tolerance, minBytes);
  return { lower: mean - half, upper: mean + half, mean };
}

function nextStep(layout: Layout, band: Band, low: number, high: number): { donor: NodeId; recipient: NodeId; step: ByteStep } | undefined {
  const byBytes = layout.nodes.sort((a, b) => layout.bytes.get(b)! - layout.bytes.get(a)! || a - b);
  const heaviestFirst = byBytes.filter((id) => layout.bytes.get(id)! > band.mean);
  const lightestFirst = byBytes.filter((id) => layout.bytes.get(id)! < band.mean).reverse();
  for (const donor of heaviestFirst) {
    for (const recipient of lightestFirst) {
      if (layout.bytes.get(donor)! <= band.upper && layout.bytes.get(recipient)! >= band.lower) continue;
      const gap = layout.bytes.get(donor)! - layout.bytes.get(recipient)!;
      const canMove = layout.count(donor) > low && layout.count(recipient) < high;
      const step = (canMove ? bestMove(layout, donor, recipient, gap) : undefined) ?? bestSwap(layout, donor, recipient, gap);
      if (step !== undefined) return { donor, recipient, step };
    }
  }
  return undefined;
}

/** The donor's shard the recipient lacks with size in (0, gap) closest to gap/2 (lowest id on ties). */
function bestMove(layout: Layout, donor: NodeId, recipient: NodeId, gap: number): ByteStep | undefined {
  const shard = layout.closestShard(donor, recipient, gap / 2, (size) => size > 0 && size < gap);
  return shard === undefined ? undefined : { shard };
}

/** Shard s of the donor for shard t of the recipient (each lacking the other's), s − t in (0, gap) closest to gap/2. */
function bestSwap(layout: Layout, donor: NodeId, recipient: NodeId, gap: number): ByteStep | undefined {
  const theirs = [...layout.held.get(recipient)!].filter((shard) => layout.movable(shard, donor)).sort((a, b) => layout.size.get(a)! - layout.size.get(b)! || a - b);
  const sizes = theirs.map((shard) => layout.size.get(shard)!);
  let best: { shard: number; back: number; miss: number } | undefined;
  for (const shard of layout.held.get(donor)!) {
    if (!layout.movable(shard, recipient)) continue;
    const size = layout.size.get(shard)!;
    const at = partitionPoint(0, sizes.length, (i) => sizes[i]! >= size - gap / 2);
    for (const index of [at - 1, at]) {
      if (index < 0 || index >= theirs.length) continue;
      const carried = size - sizes[index]!;
      if (carried <= 0 || carried >= gap) continue;
      const miss = Math.abs(carried - gap / 2);
      if (best === undefined || miss < best.miss) best = { shard, back: theirs[index]!, miss };
    }
  }
  return best === undefined ? undefined : { shard: best.shard, back: best.back };
}

/**
 * The byte part of the lower bound (see the file comment) for a layout
 * holding the kept replicas, `finalBytes` the bytes of all replicas once
 * the replica count is restored, every count to end in [low, high]; the
 * caller takes the larger of this and the count bound.
 *
 * Over the set H of nodes above the band: bytes leaving H (moves inside H
 * carry nothing out) must be at least their excess, and a move out carries
 * at most H's largest shard, so at least ⌈excess / largest⌉ moves leave H
 * (and at least the sum over H's nodes of ⌈a node's excess / its largest⌉);
 * H's counts may fall by at most Σ(count − low), so the moves into H are at
 * least the moves out minus that. Symmetrically for the set below the band
 * (moves in at least ⌈deficit / the largest shard⌉, out at least the moves
 * in minus Σ(high − count)). Moves out of and into one set are distinct.
 */
export function byteMovesBound(layout: Layout, finalBytes: number, width: BandWidth, low: number, high: number): number {
  const nodes = layout.nodes;
  const { upper, lower } = bandAround(finalBytes / nodes.length, width);
  const largest = Math.max(0, ...layout.size.values());
  const heavy = nodes.filter((id) => layout.bytes.get(id)! > upper);
  const light = nodes.filter((id) => layout.bytes.get(id)! < lower);
  let heavyBound = 0;
  const largestHeavy = Math.max(0, ...heavy.flatMap((id) => [...layout.held.get(id)!].map((shard) => layout.size.get(shard)!)));
  if (heavy.length > 0 && largestHeavy > 0) {
    // Also per node: each move out leaves one node, and carries at most that node's largest shard.
    const perNode = heavy.reduce((sum, id) => sum + Math.ceil((layout.bytes.get(id)! - upper) / Math.max(...[...layout.held.get(id)!].map((shard) => layout.size.get(shard)!))), 0);
    const out = Math.max(perNode, Math.ceil(heavy.reduce((sum, id) => sum + layout.bytes.get(id)! - upper, 0) / largestHeavy));
    heavyBound = out + Math.max(0, out - heavy.reduce((sum, id) => sum + layout.count(id) - low, 0));
  }
  let lightBound = 0;
  if (light.length > 0 && largest > 0) {
    const into = Math.ceil(light.reduce((sum, id) => sum + lower - layout.bytes.get(id)!, 0) / largest);
    lightBound = into + Math.max(0, into - light.reduce((sum, id) => sum + high - layout.count(id), 0));
  }
  return Math.max(heavyBound, lightBound);
}

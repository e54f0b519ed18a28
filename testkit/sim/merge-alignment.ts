/**
 * Merges with alignment at scale, on the product's pure planners and map
 * functions: the merge trigger's round (src/shard/alignment.ts
 * `planMergeRound`) and the mover's plan (`planReplicaMoves`: alignment
 * moves first, then placement with the pairs pinned), each decision applied
 * to a shard map through the map's own changes (startAlignment,
 * dropAlignment, startMove / targetPromoted / finishMove, startMerge /
 * finishMerge), so every intermediate map passes `checkedShardMap`.
 *
 * Time is in rounds. Each round: the trigger runs `mergeRoundsPerRound`
 * times (each may start one merge, which completes at once: a merge is a few
 * log entries), then the mover starts at most `movesMax` moves (one a shard)
 * and each completes within the round (learner, promote, remove: the map
 * holds four replicas for a moment, never fewer than three). Optional node
 * deaths (`deaths`: at those rounds, a node that holds a replica of some pair
 * in alignment dies) exercise the drop path.
 *
 * Checked (violations):
 *   - never below the replica count: after every map change, every shard
 *     has at least `replicationFactor` replicas in the map;
 *   - no shard moved back and forth: no replica of a shard moves from A to
 *     B and later from B to A (the balance undoing an alignment or its own
 *     move, an alignment undoing an alignment) — except an alignment move
 *     taking a replica back where a balance move took it before the pair
 *     was marked, which is counted (`alignUndidEarlierPlacement`): the pair
 *     is held from then on and merges, so it cannot repeat;
 *   - after settling (a round with nothing to do): every shard has three
 *     replicas on distinct live nodes, every live node holds floor(T/N) or
 *     ceil(T/N) replicas (within 10% of the mean), no alignment is left, and
 *     the trigger finds no pair left to merge or align;
 *   - it settles within `roundsMax` rounds.
 * A run is a pure function of its options (`traceHash`).
 */
import { createHash } from 'node:crypto';
import { type PlannedMove, alignments, dropAlignment, planMergeRound, planReplicaMoves, startAlignment } from '../../src/shard/alignment.js';
import { finishMerge, startMerge } from '../../src/shard/merges.js';
import { finishMove, startMove, targetPromoted } from '../../src/shard/moves.js';
import { type ShardMap, initialShardMap, mergingShard, shardById } from '../../src/shard/shard-map.js';
import { SeededRandom } from '../../src/util/random.js';

export interface AlignmentSimOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly shards: number;
  readonly replicationFactor: number;
  /** Share of the shards that are small, in contiguous runs of `smallRun` (a dropped table, a cold key range). */
  readonly smallShare: number;
  readonly smallRun: number;
  /** `--shard-merge-bytes`; small shards weigh 1 MiB, the others 64–512 MiB. */
  readonly mergeBytes: number;
  /** `--shard-moves-max`: moves (and alignments) in flight at once. */
  readonly movesMax: number;
  /** Trigger rounds per mover round (merges complete at once in the model). */
  readonly mergeRoundsPerRound: number;
  /** A shard whose epoch rose within this many rounds does not start a merge or alignment (`--shard-merge-quiet-ms`). */
  readonly quietRounds: number;
  /** Rounds at which a node holding a replica of an aligning pair dies. */
  readonly deaths?: readonly number[];
  readonly roundsMax: number;
}

export interface AlignmentSimResult {
  readonly rounds: number;
  readonly settled: boolean;
  readonly shardsBefore: number;
  readonly shardsAfter: number;
  readonly merges: number;
  readonly alignedMerges: number;
  readonly alignmentsStarted: number;
  readonly alignmentsDropped: number;
  readonly alignMoves: number;
  readonly placementMoves: number;
  /** Alignment moves that took a replica back where a placement move (made before the pair was marked) had taken it from: not a fight (the balance never moves a pair back), but a move a smarter choice could save. */
  readonly alignUndidEarlierPlacement: number;
  /** Live nodes' replica counts after settling, over their mean. */
  readonly countMinOverMean: number;
  readonly countMaxOverMean: number;
  readonly planMsMax: number;
  readonly violations: readonly string[];
  readonly traceHash: string;
}

const MIB = 1024 * 1024;

export function runAlignmentSimulation(options: AlignmentSimOptions): AlignmentSimResult {
  const random = new SeededRandom(options.seed);
  let live = Array.from({ length: options.nodes }, (_, i) => i + 1);
  const splitKeys = Array.from({ length: options.shards - 1 }, (_, i) => Buffer.from(`k${String(i + 1).padStart(6, '0')}`));
  let map = initialShardMap(splitKeys, live, options.replicationFactor);
  const sizes = new Map(map.shards.map((shard) => [shard.id, Math.round(2 ** (26 + 3 * random.next()))]));
  const smallRuns = Math.round((options.shards * options.smallShare) / options.smallRun);
  for (let run = 0; run < smallRuns; run++) {
    const first = random.int(options.shards - options.smallRun);
    for (let i = 0; i < options.smallRun; i++) sizes.set(map.shards[first + i]!.id, MIB);
  }
  const stats = { merges: 0, alignedMerges: 0, alignmentsStarted: 0, alignmentsDropped: 0, alignMoves: 0, placementMoves: 0, alignUndidEarlierPlacement: 0, planMsMax: 0 };
  const violations: string[] = [];
  const trace = createHash('sha256');
  const history = new MoveHistory();
  const epochSeen = new Map<number, { epoch: number; round: number }>();
  const change = (next: ShardMap, what: string): void => {
    map = next;
    const short = map.shards.find((shard) => shard.replicas.length < Math.min(options.replicationFactor, live.length));
    if (short !== undefined) violations.push(`${what}: shard ${short.id} has ${short.replicas.length} replicas`);
  };
  const shardsBefore = map.shards.length;
  let round = 0;
  let settled = false;
  for (; round < options.roundsMax && !settled; round++) {
    if (options.deaths?.includes(round)) live = killAligningNode(map, live, (what) => trace.update(what));
    const recent = noteEpochs(map, epochSeen, round, options.quietRounds);
    let work = 0;
    for (let each = 0; each < options.mergeRoundsPerRound; each++) {
      const plan = planMergeRound({ map, sizes, live: new Set(live), recentlySplit: recent, mergeBytes: options.mergeBytes, splitBytes: 0, alignmentsMax: options.movesMax });
      for (const { right } of plan.drop) change(dropAlignment(map, right), `drop ${right}`);
      stats.alignmentsDropped += plan.drop.length;
      for (const left of plan.align) change(startAlignment(map, left), `align onto ${left}`);
      stats.alignmentsStarted += plan.align.length;
      if (plan.merge !== undefined) {
        const right = map.shards[map.shards.findIndex((shard) => shard.id === plan.merge) + 1]!;
        if (right.alignTo === plan.merge) stats.alignedMerges++;
        change(finishMerge(startMerge(map, plan.merge), plan.merge), `merge into ${plan.merge}`);
        sizes.set(plan.merge, sizes.get(plan.merge)! + sizes.get(right.id)!);
        sizes.delete(right.id);
        stats.merges++;
      }
      trace.update(`${round}.${each} drop ${plan.drop.map((d) => d.right).join(',')} align ${plan.align.join(',')} merge ${plan.merge ?? '-'}\n`);
      work += plan.drop.length + plan.align.length + (plan.merge === undefined ? 0 : 1);
    }
    const started = performance.now();
    const planned = planReplicaMoves(map, live, (id) => sizes.get(id), { replicationFactor: options.replicationFactor });
    stats.planMsMax = Math.max(stats.planMsMax, performance.now() - started);
    const chosen = new Set<number>();
    for (const move of planned) {
      if (chosen.size >= options.movesMax) break;
      if (chosen.has(move.shard) || mergingShard(map, move.shard) || shardById(map, move.shard)?.move !== undefined) continue;
      chosen.add(move.shard);
      runMove(move);
    }
    trace.update(`${round} moves ${[...chosen].join(',')}\n`);
    // Settled: nothing decided, nothing moved, and no shard still inside its quiet time (it may become a candidate after it).
    settled = work === 0 && chosen.size === 0 && recent.size === 0;
  }

  function runMove(move: PlannedMove): void {
    const what = `${move.reason} move of ${move.shard} ${move.from}>${move.to}`;
    change(startMove(map, move.shard, move.from, move.to), what);
    change(targetPromoted(map, move.shard), what);
    change(finishMove(map, move.shard), what);
    if (move.reason === 'align') stats.alignMoves++;
    else stats.placementMoves++;
    // An alignment may take a replica back where a balance move took it before the pair was marked (counted); any other move back is a fight.
    const back = history.record(move);
    if (back !== undefined && move.reason === 'align' && back.undone === 'placement') stats.alignUndidEarlierPlacement++;
    else if (back !== undefined) violations.push(`round ${round}: ${back.description}`);
  }

  if (!settled) violations.push(`not settled after ${options.roundsMax} rounds`);
  violations.push(...checkSettled(map, live, options.replicationFactor));
  const counts = live.map((id) => map.shards.filter((shard) => shard.replicas.includes(id)).length);
  const mean = counts.reduce((a, b) => a + b, 0) / live.length;
  const liveSet = new Set(live);
  const last = planMergeRound({ map, sizes, live: liveSet, recentlySplit: new Set(), mergeBytes: options.mergeBytes, splitBytes: 0, alignmentsMax: options.movesMax });
  if (last.merge !== undefined || last.align.length > 0) violations.push(`after settling the trigger still finds work: merge ${last.merge}, align ${last.align.join(',')}`);
  return {
    rounds: round,
    settled,
    shardsBefore,
    shardsAfter: map.shards.length,
    ...stats,
    countMinOverMean: Math.min(...counts) / mean,
    countMaxOverMean: Math.max(...counts) / mean,
    violations,
    traceHash: trace.digest('hex'),
  };
}

/**
 * The end state's problems: every shard has `factor` replicas on distinct
 * live nodes, every live node holds floor(T/N) or ceil(T/N) replicas (and
 * is within 10% of the mean, from 10 replicas a node on), no alignment is
 * left. Exported so a test can show
 * it rejects bad end states.
 */
export function checkSettled(map: ShardMap, live: readonly number[], factor: number): string[] {
  const problems: string[] = [];
  const liveSet = new Set(live);
  const bad = map.shards.find((shard) => shard.replicas.length !== factor || new Set(shard.replicas).size !== factor || shard.replicas.some((id) => !liveSet.has(id)));
  if (bad !== undefined) problems.push(`shard ${bad.id} ends on ${bad.replicas.join(',')}`);
  const counts = live.map((id) => map.shards.filter((shard) => shard.replicas.includes(id)).length);
  const total = counts.reduce((a, b) => a + b, 0);
  const mean = total / live.length;
  // Within 10% of the mean as well from 10 replicas a node on (below, one replica is more than 10%).
  if (counts.some((count) => count < Math.floor(mean) || count > Math.ceil(mean) || (mean >= 10 && Math.abs(count - mean) > 0.1 * mean))) problems.push(`replica counts ${Math.min(...counts)}..${Math.max(...counts)} not within [floor, ceil] of the mean ${mean.toFixed(1)} and 10% of it`);
  if (alignments(map).length > 0) problems.push(`${alignments(map).length} alignments left after settling`);
  return problems;
}

/** A move that takes a replica back where an earlier move of the same shard took it from. */
export interface MoveBack {
  readonly description: string;
  /** Why the earlier move was made (its `reason`). */
  readonly undone: string;
}

/** The moves of every shard so far: `record` names a move that takes a replica back where the shard had moved it from. */
export class MoveHistory {
  /** Shard → "from>to" of each of its moves → the reason of the first such move. */
  private readonly moved = new Map<number, Map<string, string>>();

  /** Records `move`; the move back when it undoes an earlier move of the same shard (B back to A after A to B), else undefined. */
  record(move: { readonly shard: number; readonly from: number | null; readonly to: number; readonly reason?: string }): MoveBack | undefined {
    const seen = this.moved.get(move.shard) ?? new Map<string, string>();
    this.moved.set(move.shard, seen);
    const reason = move.reason ?? 'a move';
    if (!seen.has(`${move.from}>${move.to}`)) seen.set(`${move.from}>${move.to}`, reason);
    const undone = seen.get(`${move.to}>${move.from}`);
    if (move.from === null || undone === undefined) return undefined;
    return { description: `shard ${move.shard} moved back from ${move.from} to ${move.to} (${reason}, undoing its earlier ${undone} move)`, undone };
  }
}

/** Kills a live node holding a replica of a pair in alignment (the lowest such; any live node when none), so the pair must be dropped. */
function killAligningNode(map: ShardMap, live: readonly number[], note: (what: string) => void): number[] {
  const inPairs = alignments(map).flatMap(({ left, right }) => [...left.replicas, ...right.replicas]).filter((id) => live.includes(id));
  const dead = inPairs.length > 0 ? Math.min(...inPairs) : live[0]!;
  note(`node ${dead} dies\n`);
  return live.filter((id) => id !== dead);
}

/** The shards whose epoch rose within `quietRounds` rounds (the trigger's hysteresis, in rounds). */
function noteEpochs(map: ShardMap, seen: Map<number, { epoch: number; round: number }>, round: number, quietRounds: number): Set<number> {
  const recent = new Set<number>();
  for (const shard of map.shards) {
    let last = seen.get(shard.id);
    // The first map counts as settled long ago; a later epoch starts the quiet time.
    if (last === undefined) seen.set(shard.id, (last = { epoch: shard.epoch, round: -Infinity }));
    else if (last.epoch !== shard.epoch) seen.set(shard.id, (last = { epoch: shard.epoch, round }));
    if (round - last.round < quietRounds) recent.add(shard.id);
  }
  return recent;
}

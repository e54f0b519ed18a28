/**
 * Merges with alignment at the scale, from the simulator
 * (testkit/sim/merge-alignment.ts): 50 nodes, 3,000 shards of three
 * replicas, a fifth of them small (1 MiB, in contiguous runs of ten; the
 * others 64–512 MiB), `--shard-merge-bytes` 16 MiB, 16 moves in flight, a
 * node holding a replica of an aligning pair dying at rounds 10 and 40.
 * Reports the merges, how many followed an alignment, the moves by kind,
 * the alignments dropped, the rounds to settle, the replica counts after,
 * and the violations (none expected). Deterministic, but for the plan time.
 *
 *   node dist/bench/merge-alignment.js [--nodes 50] [--shards 3000] [--seeds 1,2,3]
 *
 * Prints the table and writes it to docs/benchmarks.md (section "sharding-merge-alignment").
 */
import { runAlignmentSimulation } from '../testkit/sim/merge-alignment.js';
import { flag, formatNumber, table, writeSection } from './report.js';

const NODES = Number(flag('nodes', '50'));
const SHARDS = Number(flag('shards', '3000'));
const SEEDS = flag('seeds', '1,2,3').split(',').map(Number);
const MIB = 1024 * 1024;

const rows: string[][] = [];
for (const seed of SEEDS) {
  const started = performance.now();
  const run = runAlignmentSimulation({ seed, nodes: NODES, shards: SHARDS, replicationFactor: 3, smallShare: 0.2, smallRun: 10, mergeBytes: 16 * MIB, movesMax: 16, mergeRoundsPerRound: 4, quietRounds: 3, deaths: [10, 40], roundsMax: 5000 });
  const seconds = (performance.now() - started) / 1000;
  rows.push([
    String(seed),
    `${formatNumber(run.shardsBefore)} → ${formatNumber(run.shardsAfter)}`,
    `${formatNumber(run.merges)} (${formatNumber(run.alignedMerges)})`,
    `${formatNumber(run.alignmentsStarted)} / ${formatNumber(run.alignmentsDropped)}`,
    formatNumber(run.alignMoves),
    formatNumber(run.placementMoves),
    String(run.alignUndidEarlierPlacement),
    formatNumber(run.alignMoves / Math.max(1, run.alignedMerges), 2),
    String(run.rounds),
    `${formatNumber(run.countMinOverMean, 3)}–${formatNumber(run.countMaxOverMean, 3)}`,
    String(run.violations.length),
    formatNumber(run.planMsMax, 0),
    formatNumber(seconds, 0),
  ]);
  console.error(`seed ${seed}: ${run.violations.slice(0, 3).join('; ') || 'no violations'}`);
}
const markdown = [
  '### Merges with alignment at scale (simulation)',
  '',
  `From \`bench/merge-alignment.ts\` (\`node dist/bench/merge-alignment.js\`): ${NODES} nodes, ${formatNumber(SHARDS)} shards of three replicas, a fifth small (1 MiB, runs of ten neighbours; the rest 64–512 MiB), \`--shard-merge-bytes\` 16 MiB, 16 moves in flight; at rounds 10 and 40 a node holding a replica of an aligning pair dies. The product's trigger round and mover plan, applied through the map's own changes. Moves: alignment moves (R's replicas onto L's) and placement moves (restore, balance). A shard below three replicas, or a move back (A→B, later B→A) by the balance or by an alignment undoing an alignment, would be a violation; an alignment move taking a replica back where a balance move took it before the pair was marked is counted in its own column (the pair is held from then on and merges: it cannot repeat). Counts: live nodes' replicas over the mean after settling. Plan time and run time on this shared machine.`,
  '',
  table(['seed', 'shards', 'merges (after an alignment)', 'alignments started / dropped', 'alignment moves', 'placement moves', 'alignment moves undoing an earlier balance move', 'alignment moves a merge', 'rounds to settle', 'replicas a node / mean', 'violations', 'slowest plan, ms', 'run, s'], rows),
].join('\n');
console.log(markdown);
await writeSection('sharding-merge-alignment', markdown);

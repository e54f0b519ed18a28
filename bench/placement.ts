/**
 * Scale-out on paper, from the placement simulation (testkit/sim/placement.ts):
 * how much placement work a change causes as the cluster grows from 5 to 50
 * nodes and from 100 to 5,000 shards (three replicas each): the replica moves
 * of the first placement, of adding one node, and of one node's death, each
 * beside the lower bound any plan needs. Deterministic (no timing): the
 * figures are the same on every machine.
 *
 *   node dist/bench/placement.js
 *
 * Prints the table and writes it to docs/benchmarks.md (section "sharding-placement").
 */
import { type PlacedShard, applyMoves, minimumMoves, planPlacement } from '../src/shard/placement.js';
import { formatNumber, table, writeSection } from './report.js';

const NODES = [5, 10, 25, 50];
const SHARDS = [100, 1000, 5000];
const FACTOR = 3;

function movesFor(live: number[], shards: PlacedShard[]): { moves: number; minimum: number; after: PlacedShard[] } {
  const input = { liveNodes: live, shards, replicationFactor: FACTOR };
  const plan = planPlacement(input);
  return { moves: plan.length, minimum: minimumMoves(input), after: applyMoves(shards, plan) };
}

const rows: string[][] = [];
for (const nodes of NODES) {
  for (const count of SHARDS) {
    const live = Array.from({ length: nodes }, (_, index) => index + 1);
    const first = movesFor(live, Array.from({ length: count }, (_, index) => ({ id: index + 2, replicas: [] })));
    const added = movesFor([...live, nodes + 1], first.after);
    const died = movesFor(live.slice(1), first.after);
    const perNode = (count * FACTOR) / nodes;
    rows.push([String(nodes), formatNumber(count), formatNumber(perNode, 0), `${formatNumber(added.moves)} (${formatNumber(added.minimum)})`, `${formatNumber(died.moves)} (${formatNumber(died.minimum)})`, formatNumber((died.moves / (count * FACTOR)) * 100, 1)]);
  }
}
const markdown = [
  '### Placement work as the cluster grows (simulation, three replicas a shard)',
  '',
  'From `bench/placement.ts` (deterministic: replica moves the planner makes, the lower bound in parentheses). A move is a learner added, caught up by a snapshot, promoted, the source removed: four membership operations of that shard group and one snapshot of the shard.',
  '',
  table(['nodes', 'shards', 'replicas a node', 'moves: one node added', 'moves: one node dies', 'died: % of all replicas moved'], rows),
].join('\n');
console.log(markdown);
await writeSection('sharding-placement', markdown);

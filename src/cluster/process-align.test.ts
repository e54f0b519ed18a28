/**
 * A merge that needs an alignment first, in a cluster of real `impulse
 * serve` processes: four members, split key h (shards 2 [-inf, h) and 3
 * [h, +inf), three replicas each over four members, so on different replica
 * sets), `--shard-merge-bytes` on and no quiet time. Four clients record
 * gets, puts and conditional puts by revision on keys of both shards — two
 * through the members, two routing by their cached shard map — while the
 * meta leader marks shard 3 for alignment, moves its replicas onto shard 2's
 * members (learner, snapshot, promote, remove) and merges it. Afterwards
 * every member's /shards shows the one shard left on three members, and the
 * whole history (with a final read of every key through every member) is
 * linearizable (testkit/check): nothing acknowledged lost across the moves
 * and the merge, nothing applied twice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { History } from '../../testkit/cluster/process-history.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { eventually } from '../../testkit/process/eventually.js';

const KEYS = ['b', 'd', 'j', 'r'];
const MEMBERS = [1, 2, 3, 4];

describe('a merge after an alignment in a process cluster', () => {
  it('aligns the right shard onto the left one\'s members and merges them under concurrent clients, with a linearizable history', async (t) => {
    const cluster = await ProcessCluster.start(4, { serveArgs: ['--split-keys', 'h', '--shard-merge-bytes', '1000000', '--shard-merge-quiet-ms', '0'] });
    try {
      await cluster.waitForLeader();
      await eventually('member 1 serves the two shards', async () => {
        const view = await cluster.client(1).shards();
        return view.shards.length === 2 && view.shards.every((shard) => shard.leader !== null);
      });
      const first = await cluster.client(1).shards();
      assert.notDeepEqual(first.shards[0]!.replicas, first.shards[1]!.replicas, 'the two shards start on different members');
      const history = new History(cluster, { keys: KEYS, clients: 4, members: 4, shardRoutingClients: 2 });
      const running = history.run();
      const started = Date.now();
      let alignSeen = false;
      await eventually('every member serves the one merged shard', async () => {
        for (const id of MEMBERS) {
          const view = await cluster.client(id).shards();
          alignSeen ||= view.shards.some((shard) => shard.alignTo !== undefined);
          if (view.shards.length !== 1 || view.shards.some((shard) => shard.move !== undefined || shard.mergeInto !== undefined)) return false;
        }
        return true;
      });
      const mergedMs = Date.now() - started;
      history.stop();
      await running;
      const completed = await history.finishLinearizable(60);
      const view = await cluster.client(1).shards();
      assert.equal(view.shards[0]!.replicas.length, 3);
      t.diagnostic(`${history.operations.length} operations, ${completed} completed; aligned and merged everywhere ${mergedMs} ms after the clients started; alignTo seen in GET /shards: ${alignSeen}`);
    } finally {
      await cluster.close();
    }
  });
});

/**
 * A shard merge at runtime in a cluster of real `impulse serve` processes
 * (split keys h and p: shards 2 [-inf, h), 3 [h, p), 4 [p, +inf), all on the
 * three members): six clients record gets, puts and conditional puts by
 * revision on keys of all three shards — three through every member, three
 * routing by their cached shard map (`shardRouting`, which refreshes on 421)
 * — while `POST /shards/merge` (what `impulse shards merge 2` sends) merges
 * shard 3 into shard 2. Afterwards every member's /shards shows the two
 * shards left, a final read of every key through every member joins the
 * history, and the whole history is linearizable (testkit/check): no
 * acknowledged write lost, none applied twice, none served by both shards,
 * and no conditional write matched a revision reused by the merge.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { History } from '../../testkit/cluster/process-history.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { eventually } from '../../testkit/process/eventually.js';

const KEYS = ['b', 'd', 'j', 'm', 'r'];

describe('a shard merge in a process cluster', () => {
  it('merges two shards under concurrent clients with a linearizable history and nothing lost', async (t) => {
    const cluster = await ProcessCluster.start(3, { serveArgs: ['--split-keys', 'h,p'] });
    try {
      await cluster.waitForLeader();
      const everyMemberSees = (count: number) => async (): Promise<boolean> => {
        for (const id of [1, 2, 3]) {
          const view = await cluster.client(id).shards();
          if (view.shards.length !== count || view.shards.some((shard) => shard.leader === null || shard.mergeInto !== undefined)) return false;
        }
        return true;
      };
      await eventually('every member serves the three shards', everyMemberSees(3));
      const history = new History(cluster, { keys: KEYS, clients: 6, members: 3, shardRoutingClients: 3 });
      const running = history.run();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const mergeAt = Date.now();
      // Until the right shard's size reached the meta leader (every 5 s), the merge is refused as unavailable (503): asked again.
      await eventually('the merge is under way', async () => (await cluster.client(2).mergeShards(2)).version > 0);
      await eventually('every member serves the two shards left', everyMemberSees(2));
      const mergeMs = Date.now() - mergeAt;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      history.stop();
      await running;

      const completed = await history.finishLinearizable(60);
      for (const view of await Promise.all([1, 2, 3].map((id) => cluster.client(id).shards()))) {
        assert.deepEqual(view.shards.map((shard) => [shard.id, Buffer.from(shard.start, 'hex').toString(), shard.end === null ? null : Buffer.from(shard.end, 'hex').toString()]), [
          [2, '', 'p'],
          [4, 'p', null],
        ]);
      }
      const digests = await cluster.settledDigests();
      assert.equal(new Set([...digests.values()].map((digest) => digest.digest)).size, 1);
      t.diagnostic(`${history.operations.length} operations, ${completed} completed; the merge done everywhere ${mergeMs} ms after it was asked`);
    } finally {
      await cluster.close();
    }
  });
});

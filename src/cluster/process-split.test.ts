/**
 * A shard split at runtime in a cluster of real `impulse serve` processes
 * (split key p: shards [-inf, p) and [p, +inf)): six clients record gets,
 * puts and conditional puts on keys on both sides of the coming split key
 * "h" and in the other shard — three through every member, three routing by
 * their cached shard map (`shardRouting`, which refreshes on 421) — while
 * `POST /shards/split` (what `impulse shards split h` sends) splits the first
 * shard at "h" in the middle of it. Afterwards every member's /shards shows
 * the two halves at the new epoch with a leader, a final read of every key
 * through every member joins the history, and the whole history is
 * linearizable (testkit/check): no acknowledged write lost, none applied
 * twice, none served by both halves.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { History } from '../../testkit/cluster/process-history.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { eventually } from '../../testkit/process/eventually.js';

const KEYS = ['b', 'd', 'j', 'm', 'r'];

describe('a shard split in a process cluster', () => {
  it('splits a shard under concurrent clients with a linearizable history and nothing lost', async (t) => {
    const cluster = await ProcessCluster.start(3, { serveArgs: ['--split-keys', 'p'] });
    try {
      await cluster.waitForLeader();
      const everyMemberSees = (count: number) => async (): Promise<boolean> => {
        for (const id of [1, 2, 3]) {
          const view = await cluster.client(id).shards();
          if (view.shards.length !== count || view.shards.some((shard) => shard.leader === null)) return false;
        }
        return true;
      };
      await eventually('every member serves both shards', everyMemberSees(2));
      const history = new History(cluster, { keys: KEYS, clients: 6, members: 3, shardRoutingClients: 3 });
      const running = history.run();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const splitAt = Date.now();
      const answered = await cluster.client(2).splitShard(Buffer.from('h'));
      assert.deepEqual(answered.shards.map((shard) => [shard.id, Buffer.from(shard.start, 'hex').toString(), shard.epoch]), [
        [2, '', 2],
        [4, 'h', 2],
        [3, 'p', 1],
      ]);
      await eventually('every member serves the three shards', everyMemberSees(3));
      const splitMs = Date.now() - splitAt;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      history.stop();
      await running;

      const completed = await history.finishLinearizable(60);
      for (const view of await Promise.all([1, 2, 3].map((id) => cluster.client(id).shards()))) {
        assert.deepEqual(view.shards.map((shard) => [shard.id, shard.epoch]), [
          [2, 2],
          [4, 2],
          [3, 1],
        ]);
      }
      const digests = await cluster.settledDigests();
      assert.equal(new Set([...digests.values()].map((digest) => digest.digest)).size, 1);
      t.diagnostic(`${history.operations.length} operations, ${completed} completed; the split served everywhere ${splitMs} ms after it was asked`);
    } finally {
      await cluster.close();
    }
  });
});

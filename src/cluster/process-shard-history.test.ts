/**
 * A history across shard boundaries recorded during a split and a move, in a
 * cluster of real `impulse serve` processes (split key p: shards 2 [-inf, p)
 * and 3 [p, +inf) on members 1–3). Six clients record gets, puts and
 * conditional puts on keys on both sides of the coming split key "h" and in
 * the other shard — three through every member, three routing by their
 * cached shard map — and three write batches across shards (transactions:
 * docs/sharding.md), plain and conditional, recorded per key: pairs such as
 * (r, j) keep a lock on j in shard 2 until they resolve, so the split at h
 * carries undecided transactions into the new shard, and pairs such as
 * (b, m) lie in one shard before the split and in two after it. Six more
 * clients write triples of fresh keys z/n, c/n, k/n (two shards before the
 * split, three after; the primary z/n in shard 3, so the locks on c/n and
 * k/n are held in shard 2 through the commit and the resolve). While they run, `POST /shards/split`
 * splits shard 2 at h and a fourth member joins (`member add`), onto which
 * the meta leader moves replicas until the four are balanced.
 *
 * Afterwards: the history (with a final read of every key through every
 * member) is linearizable per key (testkit/check); every triple is present
 * whole or not at all, and whole when it was acknowledged; and every shard's
 * replicas settle on one digest (`/digest`'s per-shard list: after the moves
 * the members host different shards).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ShardsView } from '../protocol/shard-view.js';
import { FreshBatches, History, NO_EFFECT, settledShardDigests } from '../../testkit/cluster/process-history.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { eventually } from '../../testkit/process/eventually.js';

const KEYS = ['b', 'd', 'j', 'm', 'r', 't'];
// The first key is the primary: z/ in shard 3, so the locks on c/ and k/ in shard 2 are held through the commit and the resolve.
const TRIPLE = ['z/', 'c/', 'k/'];
const MEMBERS = [1, 2, 3, 4];

const counts = (view: ShardsView): number[] => MEMBERS.map((id) => view.shards.filter((shard) => shard.replicas.includes(id)).length);

describe('a history across shards during a split and a move, in a process cluster', () => {
  it('keeps gets, puts, conditional puts and batches across shards linearizable while a shard splits under undecided transactions and replicas move onto a new member; no batch applies half', async (t) => {
    const cluster = await ProcessCluster.start(3, { memberArgs: (id) => (id <= 3 ? ['--split-keys', 'p'] : []) });
    let history: History | undefined;
    let triples: FreshBatches | undefined;
    try {
      const leader = await cluster.waitForLeader();
      await eventually('every member serves both shards', async () => {
        for (const id of [1, 2, 3]) {
          const view = await cluster.client(id).shards();
          if (view.shards.length !== 2 || view.shards.some((shard) => shard.leader === null)) return false;
        }
        return true;
      });
      history = new History(cluster, { keys: KEYS, clients: 6, members: 3, shardRoutingClients: 3 });
      const running = Promise.all([
        history.run(),
        history.runBatches(20, 1, [['r', 'j'], ['b', 'm'], ['t', 'm']]),
        history.runBatches(21, 2, [['t', 'j'], ['m', 'd'], ['r', 'm']]),
        history.runBatches(22, 3, [['r', 'j'], ['j', 'b'], ['t', 'm']]),
        history.runBatches(23, 1, [['t', 'j'], ['r', 'm']]),
      ]);
      // Six writers of triples, two through each member.
      triples = new FreshBatches(cluster, TRIPLE, 3);
      const writing = triples.run([1, 2, 3, 1, 2, 3], 10_000);

      await new Promise((resolve) => setTimeout(resolve, 1500));
      const splitAt = Date.now();
      const answered = await cluster.client(2).splitShard(Buffer.from('h'));
      assert.deepEqual(answered.shards.map((shard) => [shard.id, Buffer.from(shard.start, 'hex').toString(), shard.epoch]), [
        [2, '', 2],
        [4, 'h', 2],
        [3, 'p', 1],
      ]);
      // The move: a fourth member joins while the split's new shard starts; the meta leader moves replicas onto it.
      const { clusterId } = await cluster.client(leader).cluster();
      const { peerUrl, clientUrl } = await cluster.addJoiner(4, clusterId);
      await cluster.client(leader).addMember({ id: 4, peerUrl, clientUrl });
      await cluster.start(4);
      const seen = new Map<number, string>();
      await eventually('three shards balanced over four members, a leader of each local one, no move in flight', async () => {
        for (const id of MEMBERS) {
          const view = await cluster.client(id).shards();
          seen.set(id, JSON.stringify(view.shards.map((shard) => ({ id: shard.id, replicas: shard.replicas, leader: shard.leader, move: shard.move, epoch: shard.epoch }))));
          if (view.shards.length !== 3 || view.shards.some((shard) => (shard.local && shard.leader === null) || shard.move !== undefined || shard.replicas.length !== 3)) return false;
          if ([...counts(view)].sort().join() !== '2,2,2,3') return false;
        }
        return true;
      }, 60_000).catch((error: unknown) => {
        throw new Error(`${String(error)}; last views: ${[...seen].map(([id, view]) => `${id}: ${view}`).join('\n')}`);
      });
      const settledMs = Date.now() - splitAt;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      history.stop();
      triples.stop();
      await Promise.all([running, writing]);

      const completed = await history.finishLinearizable(100);
      for (const key of KEYS) assert.ok(history.operations.some((operation) => operation.input.key === key && operation.return !== undefined && operation.input.kind !== 'get'), `no write to ${key} completed`);
      const batched = history.operations.filter((operation) => operation.clientId >= 20 && operation.clientId < 100 && operation.return !== undefined && operation.input.kind !== 'get').length;
      assert.ok(batched > 10, `only ${batched} per-key writes of batches across shards completed`);

      const answers = Object.fromEntries(triples.answers);
      assert.ok(triples.applied >= 10, JSON.stringify(answers));
      for (const code of triples.answers.keys()) assert.ok(code === 'applied' || NO_EFFECT.has(code) || code === 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN' || code === 'IMPULSE_ERR_CLIENT_TIMEOUT', `a batch across shards was answered ${code}: ${JSON.stringify(answers)}`);
      await triples.checkWhole(cluster.client(4));

      const view = await cluster.client(leader).shards();
      assert.deepEqual(view.shards.map((shard) => [shard.id, Buffer.from(shard.start, 'hex').toString()]), [
        [2, ''],
        [4, 'h'],
        [3, 'p'],
      ]);
      const digests = await settledShardDigests(cluster, MEMBERS, leader);
      t.diagnostic(`${history.operations.length} operations, ${completed} completed, ${batched} per-key writes of batches; triples: ${JSON.stringify(answers)}; split to balanced in ${settledMs} ms; replicas a member ${counts(view).join(',')}; ${digests.size} shards settled`);
    } finally {
      history?.stop();
      triples?.stop();
      await cluster.close();
    }
  });
});

/**
 * A sharded cluster of real `impulse serve` processes (split keys g and p:
 * three shards, each its own Raft group, plus the meta group): eight clients
 * record gets, puts and conditional puts on keys of all three shards — four
 * through every member, four routing by their cached shard map straight to
 * each shard's leader (the client's `shardRouting`) — while the leader of the middle shard is killed with kill -9
 * and restarted; two more write batches across shards (transactions:
 * docs/sharding.md), plain and conditional, on the same keys, recorded per
 * key in the history, and a third writes pairs of fresh keys in two shards.
 * The history is linearizable (testkit/check), every fresh pair is present
 * whole or not at all (and whole when it was acknowledged), a range scan
 * across the shards pages in key order, and the members settle on one
 * digest.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkKvLinearizability, formatOperations } from '../../testkit/check/linearizability.js';
import { FreshBatches, History, NO_EFFECT } from '../../testkit/cluster/process-history.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { eventually } from '../../testkit/process/eventually.js';

const KEYS = ['a', 'b', 'h', 'i', 'q', 'r'];

describe('a sharded process cluster', () => {
  it('keeps a history across three shards, with batches across shards, linearizable through a kill -9; no batch applies half', async (t) => {
    const cluster = await ProcessCluster.start(3, { serveArgs: ['--split-keys', 'g,p'] });
    let history: History | undefined;
    let pairs: FreshBatches | undefined;
    try {
      await cluster.waitForLeader();
      await eventually('every member serves every shard', async () => {
        for (const id of [1, 2, 3]) {
          const view = await cluster.client(id).shards();
          if (!view.sharded || view.shards.length !== 3 || view.shards.some((shard) => shard.leader === null)) return false;
        }
        return true;
      });
      history = new History(cluster, { keys: KEYS, clients: 8, members: 3, shardRoutingClients: 4 });
      const running = Promise.all([history.run(), history.runBatches(20, 1, [['b', 'r'], ['q', 'a'], ['i', 'b']]), history.runBatches(21, 3, [['r', 'h'], ['a', 'q']])]);
      // Member 2 may be the one killed: the writer then moves on to member 3 (what must hold is that none applies half).
      pairs = new FreshBatches(cluster, ['cross/', 'zcross/'], 3);
      const batches = pairs.run([2], 3000);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const middle = (await cluster.client(1).shards()).shards.find((shard) => shard.id === 3)!;
      const victim = middle.leader!;
      await cluster.kill(victim);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await cluster.start(victim);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      history.stop();
      pairs.stop();
      await Promise.all([running, batches]);

      const result = checkKvLinearizability(history.operations);
      if (result.verdict === 'not-linearizable') assert.fail(`not linearizable on key ${result.key}: ${result.explanation}\n${formatOperations(result.operations)}`);
      assert.equal(result.verdict, 'linearizable', JSON.stringify(result));
      const completed = history.operations.filter((operation) => operation.return !== undefined).length;
      assert.ok(completed > 100, `only ${completed} operations completed`);
      for (const key of KEYS) assert.ok(history.operations.some((operation) => operation.input.key === key && operation.return !== undefined && operation.input.kind !== 'get'), `no write to ${key} completed`);
      for (const routed of [true, false]) {
        const done = history.operations.filter((operation) => operation.clientId < 4 === routed && operation.return !== undefined && operation.input.kind !== 'get').length;
        assert.ok(done > 20, `only ${done} writes completed by the ${routed ? 'routing' : 'member'} clients`);
      }

      const answers = Object.fromEntries(pairs.answers);
      // A few applied is enough (the writer's member may be the one killed): the checks below are what matter.
      assert.ok(pairs.applied >= 3, JSON.stringify(answers));
      for (const code of pairs.answers.keys()) assert.ok(code === 'applied' || NO_EFFECT.has(code) || code === 'IMPULSE_ERR_CLIENT_TIMEOUT' || code === 'IMPULSE_ERR_CLIENT_UNREACHABLE' || code === 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN', `a cross-shard batch was answered ${code}: ${JSON.stringify(answers)}`);
      const reader = cluster.client(victim);
      await pairs.checkWhole(reader);
      const batched = history.operations.filter((operation) => operation.clientId >= 20 && operation.clientId < 100 && operation.return !== undefined && operation.input.kind !== 'get').length;
      assert.ok(batched > 10, `only ${batched} per-key writes of batches across shards completed`);
      const scanned: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await reader.scan({ limit: 2, ...(cursor !== undefined ? { cursor } : {}) });
        scanned.push(...page.items.map((item) => item.key.toString()));
        cursor = page.next ?? undefined;
      } while (cursor !== undefined);
      assert.deepEqual(scanned.filter((key) => !key.includes('cross/')), [...KEYS].sort());
      const digests = await cluster.settledDigests();
      assert.equal(new Set([...digests.values()].map((digest) => digest.digest)).size, 1);
      t.diagnostic(`${history.operations.length} operations, ${completed} completed; cross-shard batches: ${JSON.stringify(answers)}; killed node ${victim}`);
    } finally {
      history?.stop();
      pairs?.stop();
      await cluster.close();
    }
  });
});

/**
 * A sharded cluster of real `impulse serve` processes (split keys g and p:
 * three shards, each its own Raft group, plus the meta group): eight clients
 * record gets, puts and conditional puts on keys of all three shards — four
 * through every member, four routing by their cached shard map straight to
 * each shard's leader (the client's `shardRouting`) — while the leader of the middle shard is killed with kill -9
 * and restarted, and a ninth keeps sending batches across two shards. The
 * history is linearizable (testkit/check), every cross-shard batch was
 * refused with IMPULSE_ERR_BATCH_CROSS_SHARD or a no-effect error and none
 * of its keys exists, a range scan across the shards pages in key order,
 * and the members settle on one digest.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { checkKvLinearizability, formatOperations } from '../../testkit/check/linearizability.js';
import { History, NO_EFFECT } from '../../testkit/cluster/process-history.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { eventually } from '../../testkit/process/eventually.js';

const KEYS = ['a', 'b', 'h', 'i', 'q', 'r'];

describe('a sharded process cluster', () => {
  it('keeps a history across three shards linearizable through a kill -9, and never applies a cross-shard batch', async (t) => {
    const cluster = await ProcessCluster.start(3, { serveArgs: ['--split-keys', 'g,p'] });
    try {
      await cluster.waitForLeader();
      await eventually('every member serves every shard', async () => {
        for (const id of [1, 2, 3]) {
          const view = await cluster.client(id).shards();
          if (!view.sharded || view.shards.length !== 3 || view.shards.some((shard) => shard.leader === null)) return false;
        }
        return true;
      });
      const history = new History(cluster, { keys: KEYS, clients: 8, members: 3, shardRoutingClients: 4 });
      const running = history.run();
      let stopped = false;
      const batchAnswers = new Map<string, number>();
      const batches = (async () => {
        // Member 2 may be the one killed: while it is down, batches are unreachable (what must hold is that none applies).
        const client = cluster.client(2, 3000);
        for (let n = 0; !stopped; n++) {
          try {
            await client.batch([
              { op: 'put', key: `cross/${n}`, value: 'x' },
              { op: 'put', key: `zcross/${n}`, value: 'x' },
            ]);
            batchAnswers.set('applied', (batchAnswers.get('applied') ?? 0) + 1);
          } catch (error) {
            const code = isImpulseError(error) ? error.code : String(error);
            batchAnswers.set(code, (batchAnswers.get(code) ?? 0) + 1);
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const middle = (await cluster.client(1).shards()).shards.find((shard) => shard.id === 3)!;
      const victim = middle.leader!;
      await cluster.kill(victim);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await cluster.start(victim);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      history.stop();
      stopped = true;
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

      const answers = Object.fromEntries(batchAnswers);
      assert.ok((batchAnswers.get('IMPULSE_ERR_BATCH_CROSS_SHARD') ?? 0) > 10, JSON.stringify(answers));
      for (const code of batchAnswers.keys()) assert.ok(code === 'IMPULSE_ERR_BATCH_CROSS_SHARD' || NO_EFFECT.has(code) || code === 'IMPULSE_ERR_CLIENT_TIMEOUT' || code === 'IMPULSE_ERR_CLIENT_UNREACHABLE', `a cross-shard batch was answered ${code}: ${JSON.stringify(answers)}`);
      const reader = cluster.client(victim);
      for (const prefix of ['cross/', 'zcross/']) assert.deepEqual((await reader.scan({ prefix })).items, [], `keys under ${prefix}`);
      const scanned: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await reader.scan({ limit: 2, ...(cursor !== undefined ? { cursor } : {}) });
        scanned.push(...page.items.map((item) => item.key.toString()));
        cursor = page.next ?? undefined;
      } while (cursor !== undefined);
      assert.deepEqual(scanned, [...KEYS].sort());
      const digests = await cluster.settledDigests();
      assert.equal(new Set([...digests.values()].map((digest) => digest.digest)).size, 1);
      t.diagnostic(`${history.operations.length} operations, ${completed} completed; cross-shard batches: ${JSON.stringify(answers)}; killed node ${victim}`);
    } finally {
      await cluster.close();
    }
  });
});

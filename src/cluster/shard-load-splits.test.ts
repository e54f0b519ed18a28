/**
 * Load-triggered splits (`--shard-split-qps`, shard-load-splits.ts), in one
 * process: three real members (real TCP, disks and clock; split key "p":
 * shards 2 [-inf, p) and 3 [p, +inf); ticks of 10 ms so the load checks run
 * every second and the hold is 2 s). Six writers hammer keys of
 * shard 2 through every member (a000..a101) while one writer writes a key of shard 3
 * twice a second:
 *
 *   - shard 2 splits by load, at a key inside the hammered keys with at
 *     least two of them below it — not at its middle key by size, which is
 *     among 100 cold keys of 4 KB (b000..b099) written first in one batch;
 *     shard 3, under the threshold, does not split;
 *   - the member that decided it counts it (`shard_load_splits_decided`);
 *   - GET /shards shows the hammered shard's smoothed load;
 *   - every acknowledged write is read back, with its value, on every member;
 *   - a shard hammered on one key does not split: the refusal is counted
 *     (`shard_load_splits_refused`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KvCommand } from '../kv/command.js';
import { InProcessCluster, until as untilInProcess } from '../../testkit/cluster/in-process.js';
import { retriedLikeClient as retried, shardsSettled, startSharded } from '../../testkit/cluster/shard-checks.js';

const SPLIT_QPS = 15;

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> => untilInProcess(what, check, timeoutMs);

const put = (key: string, value: string, clientId: string, seq: number): KvCommand => ({
  ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }],
  session: { clientId, seq },
});

describe('load-triggered splits (--shard-split-qps)', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await startSharded(3, {
      flags: { splitKeys: 'p', shardSplitQps: String(SPLIT_QPS), tickMs: '10', electionTicks: '100', heartbeatTicks: '10' },
      logLevel: process.env['LOAD_SPLIT_LOG'] ?? 'silent',
    }, 60_000);
  });
  after(async () => {
    await cluster?.close();
  });

  it('splits a hammered shard where its load halves, and not a cold one; every acknowledged write stays', async () => {
    const acknowledged = new Map<string, string>();
    let stop = false;
    let loadShown = false;
    const writer = async (name: string, keyOf: (i: number) => string, pauseMs: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const key = keyOf(i);
        const value = `${name}-${i}`;
        await retried(() => cluster.member((i % 3) + 1).service.write(put(key, value, name, i + 1)));
        acknowledged.set(key, value); // one writer a key: the last acknowledged value is the one to read back
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    };
    // Most of shard 2's bytes are cold keys b000..b099 (4 KB values): its middle key by size is among them, its load is not.
    // One batch: one request, so they add no load.
    const big = Array.from({ length: 100 }, (_, i) => `b${String(i).padStart(3, '0')}`);
    await retried(() => cluster.member(1).service.write({ ops: big.map((key) => ({ type: 'put' as const, key: Buffer.from(key), value: Buffer.alloc(4096, 'x') })), session: { clientId: 'cold-bytes', seq: 1 } }));
    for (const key of big) acknowledged.set(key, 'x'.repeat(4096));
    // Writer w owns keys a{w}, a{w+6}, ... (so no two writers race on a key), a000..a101 in all.
    const hot = Array.from({ length: 6 }, (_, w) => writer(`hot-${w}`, (i) => `a${String(w + 6 * (i % 17)).padStart(3, '0')}`, 0));
    const cold = writer('cold', (i) => `q${i % 5}`, 500);
    const splitOff = until('the hot shard split', () => (cluster.member(1).shards.map?.shards.length ?? 0) >= 3);
    await splitOff.finally(async () => {
      await until('GET /shards shows the hot shard\'s smoothed load', async () => {
        for (const id of cluster.running()) {
          const view = await cluster.member(id).admin.shards();
          if (view.shards.some((shard) => shard.start === '' && (shard.requestsPerSecond ?? 0) > 0)) return (loadShown = true);
        }
        return false;
      }, 30_000).catch(() => undefined);
      stop = true;
      await Promise.all([...hot, cold]);
    });
    assert.ok(loadShown, 'GET /shards showed the smoothed load of the shard holding the hammered keys');
    await until('every member settled', () => cluster.running().every((id) => shardsSettled(cluster.member(id))));
    const map = cluster.member(1).shards.map!;
    const starts = map.shards.map((shard) => shard.start.toString());
    for (const start of starts.filter((s) => s !== '' && s !== 'p')) {
      assert.ok(start >= 'a002' && start <= 'a101', `split at ${start}: inside the hammered keys (not among the cold big ones), two at least below it (starts ${starts.join(',')})`);
    }
    const coldShard = map.shards.find((shard) => shard.end === null)!;
    assert.deepEqual([coldShard.id, coldShard.start.toString()], [3, 'p'], 'the cold shard did not split');
    const decided = await Promise.all(cluster.running().map(async (id) => (await cluster.member(id).service.status()).figures?.['shard_load_splits_decided'] ?? -1));
    assert.ok(decided.every((count) => count >= 0) && decided.reduce((sum, count) => sum + count, 0) >= 1, `shard_load_splits_decided ${decided.join(',')}`);
    for (const id of cluster.running()) {
      const items = await cluster.member(id).service.range({ limit: 1000 });
      assert.deepEqual(new Map(items.map((item) => [item.key.toString(), item.value.toString()])), acknowledged, `member ${id}`);
    }
  });

  it('does not split a shard whose load is on one key: the refusal is counted', async () => {
    const refused = async (): Promise<number> => (await Promise.all(cluster.running().map(async (id) => (await cluster.member(id).service.status()).figures?.['shard_load_splits_refused'] ?? 0))).reduce((sum, count) => sum + count, 0);
    const before = await refused();
    let stop = false;
    let seq = 0;
    const hammer = async (): Promise<void> => {
      while (!stop) {
        const i = ++seq;
        await retried(() => cluster.member((i % 3) + 1).service.write(put('r-hot', `v${i}`, 'one-key', i)));
      }
    };
    // One session: its writes go one at a time (a session's sequence numbers are applied in order).
    const writing = hammer();
    try {
      await until('a member refused to split the one-key shard', async () => (await refused()) > before, 60_000);
    } finally {
      stop = true;
      await writing;
    }
    const map = cluster.member(1).shards.map!;
    const holder = map.shards.find((shard) => shard.end === null)!;
    assert.deepEqual([holder.id, holder.start.toString()], [3, 'p'], 'shard 3 (holding r-hot) did not split');
    assert.equal((await cluster.member(1).service.get(Buffer.from('r-hot')))?.value.toString(), `v${seq}`, 'the last acknowledged write');
  });
});

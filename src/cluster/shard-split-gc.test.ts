/**
 * The GC of a split's frozen keys (shard-split-gc.ts), in one process (three
 * real members, real TCP, disks and clock; split key "p": shards 2 [-inf, p)
 * and 3 [p, +inf); a GC step deletes 2 keys, so a GC of 200 keys takes 100
 * steps in the parent's log):
 *
 *   - after a split the parent's leader collects the frozen keys: on every
 *     member the parent then holds no key of the new shard's range, no split
 *     record, no GC marker and no captured sessions; every replica of the
 *     parent is identical (every step deleted the same keys at the same
 *     index); every acknowledged write is read back; the parent's key count
 *     dropped by the frozen keys;
 *   - a member down during a split holds the GC back (it has not made the new
 *     shard); once it is back and made it, the GC runs;
 *   - every member crashed while a GC is under way, and restarted: it resumes
 *     from its marker and completes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KvCommand } from '../kv/command.js';
import { InProcessCluster, until as untilInProcess } from '../../testkit/cluster/in-process.js';
import { retriedLikeClient as retried, sameShardContent, shardsSettled } from '../../testkit/cluster/shard-checks.js';
import { frozenRightIds } from './shard-split-gc.js';
import { splitSessionsTag } from './shard-split.js';

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> => untilInProcess(what, check, timeoutMs);


describe('GC of a split\'s frozen keys (three members, split key p, 2 keys a step)', () => {
  let cluster: InProcessCluster;
  const acknowledged = new Map<string, string>();
  let seq = 0;

  /** Writes `count` keys `${prefix}000`... in commands of 50, under a session (so a split captures it). */
  const writeKeys = async (prefix: string, count: number): Promise<void> => {
    for (let first = 0; first < count; first += 50) {
      const keys = Array.from({ length: Math.min(50, count - first) }, (_, i) => `${prefix}${String(first + i).padStart(3, '0')}`);
      const command: KvCommand = { ops: keys.map((key) => ({ type: 'put' as const, key: Buffer.from(key), value: Buffer.from(`v-${key}`) })), session: { clientId: 'gc-writer', seq: ++seq } };
      await retried(() => cluster.member((seq % 3) + 1).service.write(command));
      for (const key of keys) acknowledged.set(key, `v-${key}`);
    }
  };

  const settled = (): Promise<void> => until('every member settled on the map', () => cluster.running().every((id) => shardsSettled(cluster.member(id))));

  /** Member `id`'s replica of `parent` holds nothing of split `rightId` over [start, end): no key, record, marker or captured session. */
  const collected = async (id: number, parent: number, rightId: number, start: string, end: string | null): Promise<boolean> => {
    const machine = cluster.member(id).groups.get(parent)?.group.machine.machine;
    if (machine === undefined || frozenRightIds(machine).includes(rightId)) return false;
    const keys = await machine.dataKeysIn(Buffer.from(start), end === null ? null : Buffer.from(end), 1);
    return keys.length === 0 && (await machine.capturedSessionKeys(splitSessionsTag(rightId))).length === 0;
  };

  const everyAcknowledgedWrite = async (): Promise<void> => {
    for (const id of cluster.running()) {
      const items = await cluster.member(id).service.range({ limit: 1000 });
      assert.deepEqual(new Map(items.map((item) => [item.key.toString(), item.value.toString()])), acknowledged, `member ${id}`);
    }
  };

  before(async () => {
    cluster = await InProcessCluster.start(3, { flags: { splitKeys: 'p' }, splitGcKeysPerStep: 2, logLevel: process.env['SPLIT_LOG'] ?? 'silent' });
    await cluster.waitForLeader();
    await settled();
  });
  after(async () => {
    await cluster?.close();
  });

  it('collects the frozen keys on every replica of the parent, identically; nothing acknowledged lost; the parent shrinks', async () => {
    await writeKeys('k', 400);
    const parentKeys = async (id: number): Promise<number> => (await cluster.member(id).groups.get(2)!.group.machine.machine.dataKeysIn(Buffer.alloc(0), null, 10_000)).length;
    await until('every replica of shard 2 applied the 400 keys', async () => (await Promise.all([1, 2, 3].map(parentKeys))).every((count) => count === 400));
    const map = await cluster.member(2).shards.split(Buffer.from('k200'));
    assert.deepEqual(map.shards.map((shard) => shard.id), [2, 4, 3]);
    await settled();
    await until('every replica of the parent collected split 4', async () => (await Promise.all([1, 2, 3].map((id) => collected(id, 2, 4, 'k200', 'p')))).every(Boolean));
    for (const id of [1, 2, 3]) assert.equal(await parentKeys(id), 200, `member ${id}: the parent keeps its own 200 keys only`);
    await sameShardContent(cluster, 2, 30_000);
    await sameShardContent(cluster, 4, 30_000);
    await everyAcknowledgedWrite();
    // A write retried under its session after the GC is still answered as the first time in the new shard (its sessions were copied at the split).
    const again = await cluster.member(1).service.write({ ops: [{ type: 'put', key: Buffer.from('k399'), value: Buffer.from('again') }], session: { clientId: 'gc-writer', seq } });
    assert.ok(again.revision > 0);
    assert.equal((await cluster.member(1).service.get(Buffer.from('k399')))?.value.toString(), 'v-k399', 'the retried write was not applied again');
  });

  it('waits for a member that has not made the new shard (down during the split), then collects', async () => {
    await cluster.crash(3);
    await cluster.member(1).shards.split(Buffer.from('k100'));
    const right = cluster.member(1).shards.map!.shards.find((shard) => shard.start.toString() === 'k100')!.id;
    await until('the live members made the new shard', () => [1, 2].every((id) => cluster.member(id).groups.get(right) !== undefined));
    // Two GC rounds (at least 1 s each) pass with member 3 down: its parent has not made the new shard, so the frozen keys must stay.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    for (const id of [1, 2]) assert.ok(frozenRightIds(cluster.member(id).groups.get(2)!.group.machine.machine).includes(right), `member ${id}: GC held back while member 3 is down`);
    await cluster.restart(3);
    await settled();
    await until('every replica of the parent collected the split', async () => (await Promise.all([1, 2, 3].map((id) => collected(id, 2, right, 'k100', 'k200')))).every(Boolean));
    await sameShardContent(cluster, 2, 30_000);
    await sameShardContent(cluster, right, 30_000);
    await everyAcknowledgedWrite();
  });

  it('resumes a GC after every member crashed in the middle of it', async () => {
    await writeKeys('q', 300);
    await cluster.member(2).shards.split(Buffer.from('q100'));
    const right = cluster.member(2).shards.map!.shards.find((shard) => shard.start.toString() === 'q100')!.id;
    // Poll closely for the marker of a GC under way (100 steps), then crash everyone.
    const deadline = Date.now() + 60_000;
    const underWay = (): boolean => cluster.running().some((id) => (cluster.member(id).groups.get(3)?.group.machine.machine.metaNamesStartingWith('split-gc.') ?? []).length > 0);
    while (!underWay()) {
      assert.ok(Date.now() < deadline, 'the GC started within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    for (const id of [1, 2, 3]) await cluster.crash(id);
    for (const id of [1, 2, 3]) await cluster.restart(id);
    await cluster.waitForLeader(20_000);
    await settled();
    await until('every replica of the parent collected the split after the restart', async () => (await Promise.all([1, 2, 3].map((id) => collected(id, 3, right, 'q100', null)))).every(Boolean));
    await sameShardContent(cluster, 3, 30_000);
    await sameShardContent(cluster, right, 30_000);
    await everyAcknowledgedWrite();
  });
});

describe('the split GC\'s rate (--shard-split-gc-rate 40 keys a second, 2 keys a step); a split merged back before its GC', () => {
  let cluster: InProcessCluster;
  const RATE = 40;
  before(async () => {
    cluster = await InProcessCluster.start(3, { flags: { splitKeys: 'p', shardSplitGcRate: String(RATE) }, splitGcKeysPerStep: 2, logLevel: process.env['SPLIT_LOG'] ?? 'silent' });
    await cluster.waitForLeader();
    await until('every member settled on the map', () => cluster.running().every((id) => shardsSettled(cluster.member(id))));
  });
  after(async () => {
    await cluster?.close();
  });

  it('deletes 100 frozen keys no faster than the rate, and counts the wait', async () => {
    const keys = Array.from({ length: 200 }, (_, i) => `k${String(i).padStart(3, '0')}`);
    for (let first = 0; first < keys.length; first += 50) {
      await retried(() => cluster.member(1).service.write({ ops: keys.slice(first, first + 50).map((key) => ({ type: 'put' as const, key: Buffer.from(key), value: Buffer.from('v') })) }));
    }
    const started = Date.now();
    const map = await cluster.member(1).shards.split(Buffer.from('k100'));
    const right = map.shards.find((shard) => shard.start.toString() === 'k100')!.id;
    const frozenGone = (id: number): boolean => {
      const group = cluster.member(id).groups.get(2)?.group;
      const machine = group?.machine.machine;
      const splitApplied = group?.machine.bounds?.end?.toString() === 'k100';
      return machine !== undefined && splitApplied && !frozenRightIds(machine).includes(right) && machine.metaNamesStartingWith('split-gc.').length === 0;
    };
    await until('every replica of the parent collected the split', () => [1, 2, 3].every(frozenGone));
    const elapsedMs = Date.now() - started;
    // 50 steps of 2 keys; the bucket lets a tenth of a second's worth (at least one step) go at once.
    const burstKeys = Math.max(2, RATE / 10);
    assert.ok(elapsedMs >= ((100 - burstKeys - 2) / RATE) * 1000, `100 keys at ${RATE} keys/s took ${elapsedMs} ms`);
    const figures = await Promise.all([1, 2, 3].map(async (id) => (await cluster.member(id).service.status()).figures ?? {}));
    const steps = figures.reduce((sum, each) => sum + (each['shard_split_gc_steps'] ?? 0), 0);
    const waitMs = figures.reduce((sum, each) => sum + (each['shard_split_gc_wait_ms'] ?? 0), 0);
    assert.ok(steps >= 50, `steps counted: ${steps}`);
    assert.ok(waitMs >= 1000, `waits counted: ${waitMs} ms`);
    await sameShardContent(cluster, 2, 30_000);
  });

  it('collects the record of a split whose new shard merged back into the parent before its GC began', async () => {
    // Member 3 down: it has not made the new shard, so the GC may not begin while the map names it.
    await cluster.crash(3);
    for (const key of ['c1', 'c2']) await retried(() => cluster.member(1).service.write({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(`v-${key}`) }] }), 20);
    const split = await cluster.member(1).shards.split(Buffer.from('c'));
    const right = split.shards.find((shard) => shard.start.toString() === 'c')!.id;
    await until('the live members made the new shard', () => [1, 2].every((id) => cluster.member(id).groups.get(right) !== undefined));
    await retried(() => cluster.member(1).service.write({ ops: [{ type: 'put', key: Buffer.from('c3'), value: Buffer.from('v-c3') }] }), 20); // into the new shard
    await retried(() => cluster.member(1).shards.merge(2), 20);
    await until('the map no longer names the new shard (merged back into its parent)', () => cluster.member(1).shards.map!.shards.every((shard) => shard.id !== right));
    await until('the live replicas of the parent dropped the split record and GC marker', () =>
      [1, 2].every((id) => {
        const machine = cluster.member(id).groups.get(2)!.group.machine.machine;
        return !frozenRightIds(machine).includes(right) && machine.metaNamesStartingWith('split-gc.').length === 0;
      }),
    );
    for (const id of [1, 2]) {
      const machine = cluster.member(id).groups.get(2)!.group.machine.machine;
      for (const key of ['c1', 'c2', 'c3']) assert.equal((await machine.get(Buffer.from(key)))?.value.toString(), `v-${key}`, `member ${id}: ${key}, merged back, is live`);
    }
  });
});

/**
 * A sharded cluster in one process (three real members, real TCP, disks and
 * clock; started with split keys "g,p"): the meta group applies the first
 * shard map and every member opens the three shard groups; every key lands
 * in its shard's group and nowhere else; any member serves any key; ranges
 * walk the shards in order (and in reverse), paging with the cursor; a batch
 * across shards applies whole; a restarted member reopens
 * its shard groups from its files; GET /shards' view; a shard group refuses
 * at apply a command for keys outside its own bounds (kept in its state);
 * with four members, each shard's size and load reported to the meta leader
 * and shown by every member's GET /shards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { type KvCommand, encodeCommand } from '../kv/command.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';
import type { ShardsView } from '../protocol/shard-view.js';
import type { Member } from './open-member.js';
import { RECOUNT_MIN_BYTES } from './shard-size.js';

const put = (key: string, value: string): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] });
const keysOf = (items: readonly { key: Buffer }[]): string[] => items.map((item) => item.key.toString());

const ready = (member: Member): boolean => member.shards.map !== undefined && [2, 3, 4].every((id) => member.groups.get(id)?.group.leader !== undefined && member.groups.get(id)!.group.leader !== 0);

describe('a sharded cluster (split keys g, p)', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await InProcessCluster.start(3, { flags: { splitKeys: 'p,g' } });
    await cluster.waitForLeader();
    await until('every member applied the map and knows a leader of every shard', () => cluster.running().every((id) => ready(cluster.member(id))));
  });
  after(async () => {
    await cluster?.close();
  });

  it('applies one map of three shards, and every key lands in its own shard only', async () => {
    const map = cluster.member(1).shards.map!;
    assert.equal(map.version, 1);
    assert.deepEqual(map.shards.map((shard) => [shard.id, shard.start.toString(), shard.end?.toString() ?? null, shard.epoch, shard.replicas]), [
      [2, '', 'g', 1, [1, 2, 3]],
      [3, 'g', 'p', 1, [1, 2, 3]],
      [4, 'p', null, 1, [1, 2, 3]],
    ]);
    const placed: [string, number][] = [['apple', 2], ['f~', 2], ['g', 3], ['mango', 3], ['p', 4], ['zebra', 4]];
    for (const [index, [key]] of placed.entries()) await cluster.member((index % 3) + 1).service.write(put(key, `v-${key}`));
    const member = cluster.member(2);
    for (const [key, shard] of placed) {
      assert.equal((await member.service.get(Buffer.from(key)))?.value.toString(), `v-${key}`);
      for (const id of [1, 2, 3, 4]) {
        const held = await member.groups.get(id)!.group.machine.machine.get(Buffer.from(key));
        assert.equal(held !== undefined, id === shard, `key ${key} in group ${id}`);
      }
    }
  });

  it('walks the shards in key order and in reverse, paging with the cursor', async () => {
    const service = cluster.member(3).service;
    const all = keysOf(await service.range({ limit: 100 }));
    assert.deepEqual(all, ['apple', 'f~', 'g', 'mango', 'p', 'zebra']);
    assert.deepEqual(keysOf(await service.range({ limit: 100, reverse: true })), [...all].reverse());
    const pages: string[][] = [];
    let after: Buffer | undefined;
    for (;;) {
      const page = await service.range({ limit: 4, ...(after !== undefined ? { gt: after } : {}) });
      if (page.length === 0) break;
      pages.push(keysOf(page));
      after = page[page.length - 1]!.key;
    }
    assert.deepEqual(pages, [['apple', 'f~', 'g', 'mango'], ['p', 'zebra']]);
    assert.deepEqual(keysOf(await service.range({ gte: Buffer.from('f'), lte: Buffer.from('p'), limit: 100 })), ['f~', 'g', 'mango', 'p']);
    assert.deepEqual(keysOf(await service.range({ gt: Buffer.from('g'), lt: Buffer.from('p'), limit: 100, reverse: true })), ['mango']);
  });

  it('applies a batch across shards whole (a transaction: shard-txn.test.ts); a batch within one shard applies', async () => {
    const service = cluster.member(1).service;
    const across: KvCommand = { ops: [{ type: 'put', key: Buffer.from('b-cross'), value: Buffer.from('1') }, { type: 'put', key: Buffer.from('x-cross'), value: Buffer.from('2') }] };
    await service.write(across);
    assert.equal((await cluster.member(2).service.get(Buffer.from('b-cross')))?.value.toString(), '1');
    assert.equal((await cluster.member(3).service.get(Buffer.from('x-cross')))?.value.toString(), '2');
    const within: KvCommand = { ops: [{ type: 'put', key: Buffer.from('q1'), value: Buffer.from('1') }, { type: 'put', key: Buffer.from('q2'), value: Buffer.from('2') }] };
    await service.write(within);
    assert.equal((await cluster.member(2).service.get(Buffer.from('q2')))?.value.toString(), '2');
  });

  it('shows the shards in the view, and a restarted member reopens its shard groups from its files', async () => {
    const view = await cluster.member(1).admin.shards();
    assert.equal(view.sharded, true);
    assert.deepEqual(view.shards.map((shard) => [shard.id, shard.start, shard.end, shard.local]), [
      [2, '', Buffer.from('g').toString('hex'), true],
      [3, Buffer.from('g').toString('hex'), Buffer.from('p').toString('hex'), true],
      [4, Buffer.from('p').toString('hex'), null, true],
    ]);
    assert.ok(view.shards.every((shard) => shard.leader !== null && shard.appliedIndex !== null && shard.appliedIndex > 1));
    await cluster.stop(3);
    await cluster.restart(3);
    await until('the restarted member knows a leader of every shard', () => ready(cluster.member(3)));
    assert.equal((await cluster.member(3).service.get(Buffer.from('zebra')))?.value.toString(), 'v-zebra');
    await cluster.member(3).service.write(put('after-restart', 'yes'));
    assert.equal((await cluster.member(1).service.get(Buffer.from('after-restart')))?.value.toString(), 'yes');
  });

  it('keeps each shard group to its own bounds: a write of another shard\'s key proposed straight into it is refused at apply on every replica, also after a restart', async () => {
    for (const id of [1, 2, 3]) {
      const machine = cluster.member(id).groups.get(2)!.group.machine;
      assert.deepEqual(machine.bounds, { start: Buffer.alloc(0), end: Buffer.from('g') }, `member ${id}, the restarted one included`);
      assert.equal(cluster.member(id).groups.get(1)!.group.machine.bounds, undefined, 'the meta group has none');
    }
    const wrong = encodeCommand({ ops: [{ type: 'put', key: Buffer.from('a-ok'), value: Buffer.from('1') }, { type: 'put', key: Buffer.from('zz-wrong'), value: Buffer.from('1') }] });
    await assert.rejects(cluster.member(3).groups.get(2)!.requests.write(wrong, false), (error) => isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE') && error.details['end'] === Buffer.from('g').toString('hex'));
    const { revision } = await cluster.member(1).service.write(put('a-after', 'x')); // through the same group: applied after the refused entry
    for (const id of [1, 2, 3]) {
      const hosted = cluster.member(id).groups.get(2)!;
      await until(`member ${id} applied shard 2 up to ${revision}`, () => hosted.group.machine.appliedIndex >= revision);
      for (const key of ['a-ok', 'zz-wrong']) assert.equal(await hosted.group.machine.machine.get(Buffer.from(key)), undefined, `${key} on member ${id}`);
    }
  });
});

describe('a sharded cluster of four members (three replicas a shard)', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await InProcessCluster.start(4, { flags: { splitKeys: 'g,p' } });
    await cluster.waitForLeader();
    await until('every member applied the map and opened its shards', () =>
      cluster.running().every((id) => {
        const member = cluster.member(id);
        const map = member.shards.map;
        return map !== undefined && map.shards.every((shard) => !shard.replicas.includes(id) || (member.groups.get(shard.id)?.group.leader ?? 0) !== 0);
      }),
    );
  });
  after(async () => {
    await cluster?.close();
  });

  it('spreads three replicas a shard over the four, and a member serves the keys of a shard it does not replicate', async () => {
    const map = cluster.member(1).shards.map!;
    assert.ok(map.shards.every((shard) => shard.replicas.length === 3));
    const counts = [1, 2, 3, 4].map((id) => map.shards.filter((shard) => shard.replicas.includes(id)).length);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `replicas a member: ${counts.join(',')}`);
    const outsider = [1, 2, 3, 4].find((id) => map.shards.some((shard) => !shard.replicas.includes(id)))!;
    const foreign = map.shards.find((shard) => !shard.replicas.includes(outsider))!;
    const key = foreign.start.length === 0 ? 'a-remote' : `${foreign.start.toString()}-remote`;
    assert.equal(cluster.member(outsider).groups.get(foreign.id), undefined);
    const service = cluster.member(outsider).service;
    const { revision } = await service.write(put(key, 'one'));
    assert.deepEqual(await service.get(Buffer.from(key)), { value: Buffer.from('one'), revision });
    const serializable = await service.get(Buffer.from(key), { consistency: 'serializable' }); // a replica's own state: it may lag
    assert.ok(serializable === undefined || serializable.value.toString() === 'one');
    await assert.rejects(service.write({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from('two'), condition: { ifRevision: revision + 100 } }] }), (error) => isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED'));
    await service.write({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from('two'), condition: { ifRevision: revision } }], session: { clientId: 'remote-test', seq: 1 } });
    const replica = cluster.member(foreign.replicas[0]!);
    assert.equal((await replica.service.get(Buffer.from(key)))?.value.toString(), 'two');
    for (const other of ['b', 'h', 'q']) await cluster.member(((outsider + 1) % 4) + 1).service.write(put(other, other));
    const keys = keysOf(await service.range({ limit: 100 }));
    assert.deepEqual(keys, [...new Set(['b', 'h', 'q', key])].sort());
    assert.deepEqual(keysOf(await service.range({ limit: 100, reverse: true })), [...keys].reverse());
  });

  it('refuses malformed shard reads from a peer with a coded error', async () => {
    const map = cluster.member(1).shards.map!;
    const shard = map.shards[0]!;
    const [replica, caller] = [shard.replicas[0]!, shard.replicas[1]!];
    const rpc = cluster.member(caller).host.rpc;
    for (const body of [null, { g: shard.id }, { g: shard.id, k: 'text', s: false, t: 1000 }, { g: shard.id, k: Buffer.from('a'), q: { limit: 1 }, s: false, t: 1000 }, { g: shard.id, q: { limit: 'x' }, s: false, t: 1000 }]) {
      await assert.rejects(rpc.callAsync(replica, 'shard-read', body, 2000), (error) => isImpulseError(error, 'IMPULSE_ERR_QUERY_INVALID') || isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE'), JSON.stringify(body));
    }
    await assert.rejects(rpc.callAsync(replica, 'shard-read', { g: shard.id, q: { lt: shard.end, limit: 0 }, s: true, t: 1000 }, 2000), (error) => isImpulseError(error, 'IMPULSE_ERR_RANGE_INVALID'));
    assert.deepEqual(await rpc.callAsync(replica, 'shard-read', { g: shard.id, k: Buffer.from('absent'), s: true, t: 1000 }, 2000), { v: null });
  });

  it('reports each shard\'s size and load to the meta leader (no split threshold set), and every member shows them in GET /shards', async () => {
    const service = cluster.member(1).service;
    for (let i = 0; i < 20; i++) await service.write(put(`q-size-${i}`, 'x'.repeat(5000))); // 100 KB more in [p, +inf)
    const items = await service.range({ limit: 10_000 });
    const exactBytes = (start: string, end: string | null): number =>
      items.filter((item) => item.key.compare(Buffer.from(start, 'hex')) >= 0 && (end === null || item.key.compare(Buffer.from(end, 'hex')) < 0)).reduce((sum, item) => sum + item.key.length + item.value.length, 0);
    const shown = async (): Promise<ShardsView[]> => Promise.all(cluster.running().map((id) => cluster.member(id).admin.shards()));
    await until('every member shows every shard\'s reported size (at least its keys and values) and load', async () =>
      (await shown()).every((view) => view.reportsFrom !== null && view.shards.every((shard) => shard.reportedSizeBytes !== null && shard.reportedSizeBytes >= exactBytes(shard.start, shard.end) && shard.requestsPerSecond !== null)), 60_000);
    const metaLeader = cluster.running().find((id) => cluster.member(id).group.leads);
    for (const view of await shown()) {
      assert.equal(view.reportsFrom, metaLeader, `member ${view.nodeId} shows the meta leader's reports`);
      for (const shard of view.shards) {
        const exact = exactBytes(shard.start, shard.end);
        // An upper bound, counted again once the writes since the last count pass that count and RECOUNT_MIN_BYTES (shard-size.ts); nothing shrank here.
        assert.ok(shard.reportedSizeBytes! <= 2 * exact + RECOUNT_MIN_BYTES, `shard ${shard.id}: ${shard.reportedSizeBytes} reported, ${exact} true`);
        assert.ok(shard.reportAgeMs !== null && shard.reportAgeMs >= 0);
        assert.equal(shard.replicaIds, undefined, 'no node returned to a shard: every Raft id is its node id');
      }
      const written = view.shards.find((shard) => shard.end === null)!;
      assert.ok(written.reportedSizeBytes! >= 100_000, `the shard written to shows it: ${written.reportedSizeBytes}`);
    }
  });
});

/**
 * Shard splits at runtime, in one process (three real members, real TCP,
 * disks and clock; split key "p": shards 2 [-inf, p) and 3 [p, +inf)):
 *
 *   - a split at "h" while writers write with sessions: every acknowledged
 *     write is read back with its value and revision afterwards, through
 *     every member; the map has the two shards at the new epoch; every
 *     replica's parent keeps [-inf, h) and every replica made group 4 with
 *     [h, p) and the same content; a write made before the split and retried
 *     after it (same session) is answered as the first time, not applied
 *     again; a conditional write by a revision from before the split holds;
 *     new revisions in the new shard are above the split's index;
 *   - a member down during a split makes the new group from its parent's
 *     log once it is back (the split applied at replay);
 *   - every member crashed right after the split was requested, and
 *     restarted: the split completes from durable state (resumable), no key
 *     lost or served twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { type KvCommand, encodeCommand } from '../kv/command.js';
import { pino } from 'pino';
import { ImpulseServer } from '../api/server.js';
import { ImpulseClient } from '../client/client.js';
import { InProcessCluster, until as untilInProcess } from '../../testkit/cluster/in-process.js';
import { retriedLikeClient as retried, sameShardContent, shardsSettled, startSharded } from '../../testkit/cluster/shard-checks.js';
import { readShardKey } from './shard-reads.js';

const put = (key: string, value: string, seq?: number): KvCommand => ({
  ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }],
  ...(seq !== undefined ? { session: { clientId: 'split-writer', seq } } : {}),
});

/** This file's waits are longer than the default. */
const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> => untilInProcess(what, check, timeoutMs);


const sameContent = (cluster: InProcessCluster, id: number): Promise<void> => sameShardContent(cluster, id, 30_000);

describe('shard splits at runtime (three members, split key p)', () => {
  let cluster: InProcessCluster;
  const acknowledged = new Map<string, { value: string; revision: number }>();
  before(async () => {
    cluster = await startSharded(3, { flags: { splitKeys: 'p' }, logLevel: process.env['SPLIT_LOG'] ?? 'silent' });
  });
  after(async () => {
    await cluster?.close();
  });

  it('splits a shard under concurrent writes: nothing lost, sessions and revisions carried over', async () => {
    let seq = 0;
    const write = async (member: number, key: string, value: string): Promise<void> => {
      const command = put(key, value, ++seq);
      const { revision } = await retried(() => cluster.member(member).service.write(command));
      acknowledged.set(key, { value, revision });
    };
    for (const key of ['apple', 'grape', 'honey', 'kiwi', 'mango', 'zebra']) await write(1, key, `${key}-0`);
    const beforeSplit = { seq, revision: acknowledged.get('kiwi')!.revision };
    let writing = true;
    const writers = [1, 2, 3].map(async (member) => {
      for (let round = 1; writing; round++) {
        for (const key of ['apple', 'honey', 'kiwi', 'mango', 'zebra']) await write(member, `${key}-${member}`, `r${round}`);
      }
    });
    const map = await cluster.member(2).shards.split(Buffer.from('h'));
    assert.equal(map.version, 2);
    assert.deepEqual(map.shards.map((shard) => [shard.id, shard.start.toString(), shard.end?.toString() ?? null, shard.epoch]), [
      [2, '', 'h', 2],
      [4, 'h', 'p', 2],
      [3, 'p', null, 1],
    ]);
    await until('every member made the new shard', () => cluster.running().every((id) => shardsSettled(cluster.member(id))));
    await new Promise((resolve) => setTimeout(resolve, 300)); // writes on the new shard too
    writing = false;
    await Promise.all(writers);

    for (const id of [1, 2, 3]) {
      const member = cluster.member(id);
      for (const [key, { value, revision }] of acknowledged) assert.deepEqual(await member.service.get(Buffer.from(key)), { value: Buffer.from(value), revision }, `${key} on member ${id}`);
      const keys = (await member.service.range({ limit: 1000 })).map((item) => item.key.toString());
      assert.deepEqual(keys, [...acknowledged.keys()].sort(), `every key once, in order, on member ${id}`);
    }
    const split = (await cluster.member(1).groups.get(4)!.group.machine.machine.get(Buffer.from('kiwi')))!;
    assert.equal(split.revision, beforeSplit.revision, 'a copied key keeps its revision');
    // The first write of "kiwi" (seq 4) again, under its session: answered from the copied session, not applied again.
    const again = await cluster.member(3).service.write({ ...put('kiwi', 'kiwi-0'), session: { clientId: 'split-writer', seq: 4 } });
    assert.equal(again.revision, beforeSplit.revision);
    const conditional = await cluster.member(3).service.write({ ops: [{ type: 'put', key: Buffer.from('kiwi'), value: Buffer.from('kiwi-1'), condition: { ifRevision: beforeSplit.revision } }] });
    assert.ok(conditional.revision > beforeSplit.revision, 'revisions of the new shard continue above the copied keys');
    acknowledged.set('kiwi', { value: 'kiwi-1', revision: conditional.revision });
    for (const id of [2, 3, 4]) await sameContent(cluster, id);
    // The parent refuses the keys it gave away, at apply and on reads.
    const parent = cluster.member(1).groups.get(2)!;
    await assert.rejects(parent.requests.write(encodeCommand(put('kiwi', 'stale')), false), (error) => isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE'));
    await assert.rejects(readShardKey(parent, Buffer.from('kiwi'), false), (error) => isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE'));
  });

  it('splits through POST /shards/split (the client and the CLI\'s route), refusing malformed keys with coded errors', async () => {
    const member = cluster.member(1);
    const server = new ImpulseServer({ service: member.service, cluster: member.admin, logger: pino({ level: 'silent' }), version: 'test' });
    const base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
    try {
      const client = new ImpulseClient({ endpoint: base });
      for (const body of ['{"key": ""}', '{"keyHex": "zz"}', '{"key": "a", "keyHex": "61"}', '[]', `{"key": "${'k'.repeat(513)}"}`]) {
        const reply = await fetch(`${base}/shards/split`, { method: 'POST', body });
        assert.equal(reply.status, 400, body);
        assert.equal(((await reply.json()) as { error: { code: string } }).error.code, 'IMPULSE_ERR_CONFIG_INVALID', body);
      }
      const view = await client.splitShard(Buffer.from('w'));
      assert.equal(view.version, 3);
      assert.deepEqual(view.shards.map((shard) => [shard.id, Buffer.from(shard.start, 'hex').toString(), shard.epoch]), [
        [2, '', 2],
        [4, 'h', 2],
        [3, 'p', 3],
        [5, 'w', 3],
      ]);
      assert.equal((await client.splitShard(Buffer.from('w'))).version, 3, 'splitting at a shard\'s start again changes nothing');
      await until('every member made the new shard', () => cluster.running().every((id) => shardsSettled(cluster.member(id))));
      for (const [key, { value }] of acknowledged) assert.equal((await member.service.get(Buffer.from(key)))?.value.toString(), value, key);
    } finally {
      await server.close(); // closes member 1's service too
      await cluster.restart(1);
    }
    await until('the member restarted after the server settled', () => shardsSettled(cluster.member(1)));
  });

  it('a member down during a split makes the new shard from its parent once back', async () => {
    await cluster.crash(3);
    const map = await cluster.member(1).shards.split(Buffer.from('c'));
    assert.equal(map.version, 4);
    const written = await retried(() => cluster.member(1).service.write({ ...put('cherry', 'after-split'), session: { clientId: 'split-retrier', seq: 1 } }));
    acknowledged.set('cherry', { value: 'after-split', revision: written.revision });
    await cluster.restart(3);
    await until('the restarted member made the new shard', () => shardsSettled(cluster.member(3)));
    for (const id of [2, 3, 4, 5, 6]) await sameContent(cluster, id);
    for (const [key, { value }] of acknowledged) assert.equal((await cluster.member(3).service.get(Buffer.from(key)))?.value.toString(), value, key);
  });

  it('completes a split after every member crashed right after it was requested', async () => {
    const map = await cluster.member(2).shards.split(Buffer.from('s'));
    assert.equal(map.version, 5);
    for (const id of [1, 2, 3]) await cluster.crash(id);
    for (const id of [1, 2, 3]) await cluster.restart(id);
    await cluster.waitForLeader(20_000);
    await until('every member settled on the map with the split', () => cluster.running().every((id) => shardsSettled(cluster.member(id)) && cluster.member(id).shards.map?.version === 5));
    for (const id of [2, 3, 4, 5, 6, 7]) await sameContent(cluster, id);
    for (const id of [1, 2, 3]) {
      const keys = (await cluster.member(id).service.range({ limit: 1000 })).map((item) => item.key.toString());
      assert.deepEqual(keys, [...acknowledged.keys()].sort(), `member ${id}`);
      for (const [key, { value }] of acknowledged) assert.equal((await cluster.member(id).service.get(Buffer.from(key)))?.value.toString(), value, key);
    }
  });
});

describe('size-triggered splits (--shard-split-bytes)', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await startSharded(3, { flags: { splitKeys: 'p', shardSplitBytes: '16384' } });
  });
  after(async () => {
    await cluster?.close();
  });

  it('splits a shard past the threshold at its middle key, and only that shard', async () => {
    const written = new Map<string, string>();
    for (let i = 0; i < 40; i++) {
      const key = `k${String(i).padStart(3, '0')}`;
      const value = `${i}`.repeat(500).slice(0, 1000); // 40 keys of ~1 KB: ~40 KiB in shard 2 [-inf, p)
      await retried(() => cluster.member((i % 3) + 1).service.write({ ...put(key, value), session: { clientId: 'sizer', seq: i + 1 } }));
      written.set(key, value);
    }
    await cluster.member(1).service.write(put('zz', 'small')); // shard 3 stays small
    written.set('zz', 'small');
    await until('the map split shard 2 and every member settled', () => cluster.running().every((id) => (cluster.member(id).shards.map?.shards.length ?? 0) >= 3 && shardsSettled(cluster.member(id))), 60_000);
    const map = cluster.member(1).shards.map!;
    assert.ok(map.shards.filter((shard) => shard.start.length > 0 && shard.start.toString() < 'p').every((shard) => shard.start.toString() > 'k000' && shard.start.toString() <= 'k039'), 'split inside the written keys');
    assert.equal(map.shards.find((shard) => shard.end === null)!.id, 3, 'the small shard did not split');
    for (const id of [1, 2, 3]) {
      const items = await cluster.member(id).service.range({ limit: 1000 });
      assert.deepEqual(new Map(items.map((item) => [item.key.toString(), item.value.toString()])), written, `member ${id}`);
    }
    // The running byte count (GET /shards `sizeBytes`) of each shard's leader, once its next size check ran: at least the shard's keys and values, not its parent's frozen keys.
    const bytesIn = (start: Buffer, end: Buffer | null): number =>
      [...written].filter(([key]) => Buffer.from(key).compare(start) >= 0 && (end === null || Buffer.from(key).compare(end) < 0)).reduce((sum, [key, value]) => sum + key.length + value.length, 0);
    // (The left part may split again meanwhile: each view is judged by its own range.)
    for (const shard of map.shards) {
      await until(`shard ${shard.id}'s leader shows its size`, async () => {
        for (const id of cluster.running()) {
          const view = (await cluster.member(id).admin.shards()).shards.find((s) => s.id === shard.id);
          if (view?.leader === id && view.sizeBytes !== null) return true;
        }
        return false;
      });
    }
    for (const id of cluster.running()) {
      for (const view of (await cluster.member(id).admin.shards()).shards) {
        if (view.sizeBytes === null) continue;
        const exact = bytesIn(Buffer.from(view.start, 'hex'), view.end === null ? null : Buffer.from(view.end, 'hex'));
        assert.ok(view.sizeBytes >= exact && view.sizeBytes < exact + 16384, `shard ${view.id} on member ${id}: ${view.sizeBytes} bytes shown, ${exact} in its range`);
      }
    }
    const scans = await Promise.all(cluster.running().map(async (id) => (await cluster.member(id).service.status()).figures?.['shard_size_scans'] ?? -1));
    assert.ok(scans.every((count) => count >= 0) && scans.some((count) => count > 0), `shard_size_scans ${scans.join(',')}`);
  });
});

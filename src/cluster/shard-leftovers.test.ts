/**
 * The GC of leftover shard replicas (shard-leftovers.ts):
 *
 *   - `leftoverVerdict` on maps: the copy of a shard that left the member
 *     goes; every conservative case keeps: a replica, a move's target (its
 *     learner), the meta group, an id newer than the map, a merged-away copy
 *     with no merge record, merged into a shard the member replicates, or
 *     into one merged away in turn;
 *   - a running cluster (four members in one process, real disks): a member
 *     restarted with a real replica's files of a shard its map gives others
 *     (on disk, what a crash between leaving the group and deleting the copy
 *     leaves) deletes them and counts it (`shard_replicas_gc`); a group id
 *     newer than its map is kept, and its own shards stay hosted.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NodeId } from '../raft/types.js';
import { finishMove, startMove, targetPromoted } from '../shard/moves.js';
import { type ShardMap, initialShardMap } from '../shard/shard-map.js';
import { InProcessCluster, TEST_LIMITS, until as untilInProcess } from '../../testkit/cluster/in-process.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { engineHomeFor } from '../service/open-local.js';
import { leftoverVerdict } from './shard-leftovers.js';
import { MERGE_PREPARED_META_NAME, encodeMergePrepared } from './shard-merge.js';

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> => untilInProcess(what, check, timeoutMs);
const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

/** Shards 2 [-, g) and 3 [g, -) on nodes 1, 2, 3. */
const base = (): ShardMap => initialShardMap([Buffer.from('g')], [1, 2, 3]);

describe('leftoverVerdict', () => {
  it('deletes the copy of a shard the map names without this node (a move away finished)', () => {
    const moved = finishMove(targetPromoted(startMove(base(), 2, 3, 4), 2), 2);
    assert.deepEqual(leftoverVerdict(moved, 3, 2, undefined).delete, true);
    assert.deepEqual(leftoverVerdict(moved, 3, 3, undefined).delete, false, 'a shard it still replicates');
  });

  it('keeps a move\'s target (the learner in flight) and the move\'s source until the map retires it', () => {
    const moving = startMove(base(), 2, 3, 4);
    assert.equal(leftoverVerdict(moving, 4, 2, undefined).delete, false, 'the target');
    assert.equal(leftoverVerdict(moving, 3, 2, undefined).delete, false, 'the source, still a voter');
    assert.equal(leftoverVerdict(targetPromoted(moving, 2), 3, 2, undefined).delete, false, 'the source after the promotion');
  });

  it('keeps the meta group and an id above every id the map gave (unknown to this map)', () => {
    assert.equal(leftoverVerdict(base(), 4, 1, undefined).delete, false);
    assert.equal(leftoverVerdict(base(), 4, 4, undefined).delete, false);
    assert.equal(leftoverVerdict({ ...base(), highestId: 9 }, 4, 10, 2).delete, false);
  });

  it('judges a merged-away copy by the shard it merged into', () => {
    // Shard 4 was merged away (highestId 4); node 4 held a copy.
    const map: ShardMap = { ...base(), highestId: 4 };
    assert.equal(leftoverVerdict(map, 4, 4, undefined).delete, false, 'no merge record: keep');
    assert.equal(leftoverVerdict(map, 3, 4, 3).delete, false, 'merged into a shard this node replicates: its replica may still take the copy in');
    assert.equal(leftoverVerdict(startMove(map, 3, 1, 4), 4, 4, 3).delete, false, 'merged into a shard moving to this node');
    assert.equal(leftoverVerdict(map, 4, 4, 7).delete, false, 'merged into a shard the map no longer names');
    assert.equal(leftoverVerdict(map, 4, 4, 3).delete, true, 'merged into a shard this node does not replicate');
  });
});

describe('leftover shard copies on a running cluster', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await InProcessCluster.start(4, { flags: { splitKeys: 'g,p' }, logLevel: process.env['LEFTOVER_LOG'] ?? 'silent' });
    await cluster.waitForLeader();
    await until('every member applied the first map', () => cluster.running().every((id) => cluster.member(id).shards.map !== undefined));
  });
  after(async () => {
    await cluster?.close();
  });

  it('a member restarted with the files of a shard its map gives others deletes them; an id newer than its map stays', async () => {
    // Three shards of three replicas on four members: each member lacks some shard. The victim gets a real
    // replica's files of a shard it lacks (copied from a member that holds it, stopped so the files are at
    // rest): on disk, what a crash between leaving a shard's group and deleting the copy leaves.
    const metaLeader = await cluster.waitForLeader();
    const map = cluster.member(metaLeader).shards.map!;
    const victim = ([1, 2, 3, 4] as NodeId[]).find((id) => id !== metaLeader && map.shards.some((shard) => !shard.replicas.includes(id)))!;
    const shard = map.shards.find((each) => !each.replicas.includes(victim))!;
    const holder = shard.replicas.find((id) => id !== metaLeader)!;
    await until(`member ${holder} hosts shard ${shard.id}`, () => (cluster.member(holder).groups.get(shard.id)?.group.machine.appliedIndex ?? 0) > 0);
    await cluster.stop(holder);
    await cluster.stop(victim);
    const dir = cluster.dataDir(victim);
    for (const part of ['raft', 'kv']) await cp(join(cluster.dataDir(holder), part, String(shard.id)), join(dir, part, String(shard.id)), { recursive: true });
    const newer = 1000;
    await mkdir(join(dir, 'raft', String(newer)), { recursive: true });
    await cluster.restart(holder);
    const member = await cluster.restart(victim);
    assert.equal(member.groups.get(shard.id), undefined, 'its map does not open the leftover');
    await until('the leftover copy is deleted and counted', async () => !(await exists(join(dir, 'raft', String(shard.id)))) && !(await exists(join(dir, 'kv', String(shard.id)))) && member.shards.figures()['shard_replicas_gc'] === 1);
    const figures = (await member.service.status()).figures ?? {};
    assert.equal(figures['shard_replicas_gc'], 1, 'in /status too');
    assert.ok((figures['shard_replicas_gc_kept'] ?? 0) >= 1, 'the newer id was judged and kept');
    assert.ok(await exists(join(dir, 'raft', String(newer))), 'an id newer than the map is kept');
    for (const each of map.shards.filter((one) => one.replicas.includes(victim))) assert.ok(member.groups.get(each.id) !== undefined, `its own shard ${each.id} is hosted`);
    await rm(join(dir, 'raft', String(newer)), { recursive: true });
  });

  it('reads the merge record of a copy it does not host (the merge target the verdict of a merged-away copy needs)', async () => {
    const id = cluster.running()[0]!;
    const member = cluster.member(id);
    const copy = 77;
    const engineDir = join(cluster.dataDir(id), 'kv', String(copy), 'lsm');
    const record = { leftId: 3, index: 1, bounds: { start: Buffer.from('g'), end: Buffer.from('k') }, revisionTop: 12, epoch: 7 };
    const machine = await KvStateMachine.open({ home: engineHomeFor({ engine: 'lsm', dataDir: engineDir, sync: 'fsync', limits: TEST_LIMITS }), limits: TEST_LIMITS });
    await machine.applyBatch([{ index: 1, term: 1, type: 'meta', name: MERGE_PREPARED_META_NAME, value: encodeMergePrepared(record) }], { sync: true });
    await machine.close();
    try {
      assert.deepEqual(await member.groups.mergePreparedOnDisk(copy), record);
      assert.equal(await member.groups.mergePreparedOnDisk(1001), undefined, 'no state machine here');
      await assert.rejects(member.groups.mergePreparedOnDisk(1), /open/, 'a hosted group is refused');
    } finally {
      await rm(join(cluster.dataDir(id), 'kv', String(copy)), { recursive: true });
    }
  });
});

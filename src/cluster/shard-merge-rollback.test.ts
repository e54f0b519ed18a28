/**
 * Shard merge rollbacks at runtime, in one process (three real members, real
 * TCP, disks and clock; split keys h and p, every shard on members 1-3;
 * `--shard-merge-timeout-ms 3000`).
 *
 * A merge that cannot commit is made by hand: the right group R is frozen by
 * a `prepare-merge` of an earlier attempt than the one the map names (R's
 * epoch - 1: above any attempt R rolled back, which would void it), then the
 * map gets the intent. R's leader then never prepares again (R's bounds are not
 * its range) and L's leader never commits (R froze for another attempt):
 * the merge is stuck, R's keys refused, as when L's group cannot commit.
 *
 *   - the time bound: the meta leader marks the stuck merge to roll back
 *     after 3 s; L applies the abort, R its rollback, the map drops the merge
 *     at a new epoch of R; R serves writes again, every acknowledged write is
 *     there, the counters and GET /shards (the merge's age) show it;
 *   - the operator: POST /shards/merge/cancel refuses malformed bodies and a
 *     shard with no merge into it (coded 400s) and rolls a stuck merge back;
 *   - a crash at every step: every member crashed after each step of a
 *     rollback (the mark in the map, L's abort, R's rollback) and restarted:
 *     the rollback completes from durable state, nothing lost;
 *   - the race: a real merge cancelled at once ends either merged or rolled
 *     back, never both, with every acknowledged write kept.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ImpulseServer } from '../api/server.js';
import { isImpulseError } from '../errors.js';
import type { KvCommand } from '../kv/command.js';
import { abortMerge, startMerge } from '../shard/merges.js';
import { type Shard, type ShardMap, sameShardBounds } from '../shard/shard-map.js';
import { InProcessCluster, until as untilInProcess } from '../../testkit/cluster/in-process.js';
import { retriedAcrossRoutes, sameShardContent, shardsSettled, startSharded } from '../../testkit/cluster/shard-checks.js';
import { encodeClusterCommand } from './log-entries.js';
import type { HostedGroup } from './hosted-groups.js';

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> => untilInProcess(what, check, timeoutMs);

const retried = <T>(attempt: () => Promise<T>): Promise<T> => retriedAcrossRoutes(attempt, 60);

describe('shard merge rollbacks at runtime (three members, split keys h and p)', () => {
  let cluster: InProcessCluster;
  const acknowledged = new Map<string, { value: string; revision: number }>();
  let seq = 0;
  const write = async (key: string, value: string, member = 1 + (seq % 3)): Promise<void> => {
    const command: KvCommand = { ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }], session: { clientId: 'rollback-writer', seq: ++seq } };
    const { revision } = await retried(() => cluster.member(member).service.write(command));
    acknowledged.set(key, { value, revision });
  };
  const checkAll = async (): Promise<void> => {
    for (const id of cluster.running()) {
      const member = cluster.member(id);
      for (const [key, { value, revision }] of acknowledged) assert.deepEqual(await retried(() => member.service.get(Buffer.from(key))), { value: Buffer.from(value), revision }, `${key} on member ${id}`);
    }
  };
  const map = (): ShardMap => cluster.member(cluster.running()[0]!).shards.map!;
  const shardAt = (index: number): Shard => map().shards[index]!;
  const leaderOf = (id: number): HostedGroup => {
    const found = cluster.running().map((m) => cluster.member(m).groups.get(id)).find((hosted) => hosted?.group.leads === true);
    assert.ok(found !== undefined, `group ${id} has a leader here`);
    return found;
  };
  /** The map changed by `change` (the meta leader proposes it). */
  const writeMap = async (change: (current: ShardMap) => ShardMap): Promise<void> => {
    await until('the meta group has a leader', () => cluster.running().some((m) => cluster.member(m).group.leader === m));
    const meta = cluster.member(cluster.running().find((m) => cluster.member(m).group.leader === m)!).groups.get(1)!;
    await meta.requests.write(encodeClusterCommand({ type: 'shard-map', map: change(meta.group.machine.shardMap!) }), true);
  };
  /** Freezes the right neighbour of the shard at `leftIndex` for an earlier attempt than the map's, then puts the merge intent (and, `marked`, its rollback mark) in the map: a merge that cannot commit. */
  const stuckMerge = async (leftIndex: number, marked: boolean): Promise<{ left: Shard; right: Shard }> => {
    const left = shardAt(leftIndex);
    const right = shardAt(leftIndex + 1);
    await retried(() => leaderOf(right.id).requests.write(encodeClusterCommand({ type: 'prepare-merge', leftId: left.id, bounds: { start: right.start, end: right.end }, epoch: right.epoch - 1 }), true));
    await until('the right group froze on every member', () => cluster.running().every((id) => cluster.member(id).groups.get(right.id)?.group.machine.mergeMarks.prepared !== undefined));
    await writeMap((current) => {
      const intent = startMerge(current, left.id);
      return marked ? { ...abortMerge(intent, left.id), version: current.version + 1 } : intent;
    });
    return { left, right };
  };
  /** The rollback of `right`'s merge finished on every running member: no merge in the map, R's bounds its range again. */
  const rolledBackEverywhere = (right: Shard): boolean =>
    cluster.running().every((id) => {
      const member = cluster.member(id);
      const shard = member.shards.map?.shards.find((each) => each.id === right.id);
      const bounds = member.groups.get(right.id)?.group.machine.bounds;
      return shard !== undefined && shard.mergeInto === undefined && shard.epoch > right.epoch && bounds !== undefined && sameShardBounds(bounds, right) && shardsSettled(member);
    });
  const figure = async (name: string): Promise<number> => {
    const all = await Promise.all(cluster.running().map(async (id) => (await cluster.member(id).service.status()).figures?.[name] ?? 0));
    return all.reduce((a, b) => a + b, 0);
  };

  before(async () => {
    cluster = await startSharded(3, { flags: { splitKeys: 'h,p', shardMergeTimeoutMs: '3000' }, logLevel: process.env['MERGE_LOG'] ?? 'silent' });
  });
  after(async () => {
    await cluster?.close();
  });

  it('rolls back a merge stuck past --shard-merge-timeout-ms: the right shard serves again, nothing lost', async () => {
    for (const key of ['apple', 'kiwi', 'melon', 'zebra']) await write(key, `${key}-0`);
    const { right } = await stuckMerge(1, false);
    await until('every member sees the merge in flight', () => cluster.running().every((id) => cluster.member(id).shards.map?.shards[2]?.mergeInto === 3));
    const view = await cluster.member(1).admin.shards();
    const shown = view.shards.find((shard) => shard.id === right.id)!;
    assert.ok(shown.mergeInto === 3 && typeof shown.mergeAgeMs === 'number' && shown.mergeAgeMs >= 0, `GET /shards shows the merge and its age: ${JSON.stringify(shown)}`);
    await assert.rejects(cluster.member(2).service.write({ ops: [{ type: 'put', key: Buffer.from('zebra'), value: Buffer.from('frozen') }] }), (error) => isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE') || isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE'), 'the frozen shard refuses writes');
    await until('the merge rolled back on every member', () => rolledBackEverywhere(right));
    await write('zebra', 'after the rollback');
    await write('kiwi', 'left shard too');
    await checkAll();
    await sameShardContent(cluster, right.id, 30_000);
    assert.ok((await figure('shard_merge_rollbacks_requested')) >= 1 && (await figure('shard_merges_rolled_back')) >= 1, 'counted');
    assert.equal(map().shards.length, 3, 'both shards kept');
  });

  it('rolls back through POST /shards/merge/cancel, refusing malformed or impossible cancels with coded errors', async () => {
    const member = cluster.member(1);
    const server = new ImpulseServer({ service: member.service, cluster: member.admin, logger: pino({ level: 'silent' }), version: 'test' });
    const base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
    try {
      for (const body of ['{"shard": "2"}', '{"shard": 1}', '{}', '[]', '{"shard": 2}', '{"shard": 99}']) {
        const reply = await fetch(`${base}/shards/merge/cancel`, { method: 'POST', body });
        assert.equal(reply.status, 400, body);
        assert.equal(((await reply.json()) as { error: { code: string } }).error.code, 'IMPULSE_ERR_CONFIG_INVALID', body);
      }
      await write('zebra', 'before the second stuck merge');
      const { left, right } = await stuckMerge(1, false);
      await until('member 1 sees the merge in flight', () => member.shards.map?.shards[2]?.mergeInto === left.id);
      const reply = await fetch(`${base}/shards/merge/cancel`, { method: 'POST', body: JSON.stringify({ shard: left.id }) });
      assert.equal(reply.status, 200);
      const view = (await reply.json()) as { shards: Array<{ id: number; mergeAbort?: boolean }> };
      assert.equal(view.shards.find((shard) => shard.id === right.id)?.mergeAbort, true, 'the view shows the rollback mark');
      await until('the merge rolled back on every member', () => rolledBackEverywhere(right));
      await write('zebra', 'after the cancel');
      await checkAll();
    } finally {
      await server.close(); // closes member 1's service too
      await cluster.restart(1);
    }
    await until('the member restarted after the server settled', () => shardsSettled(cluster.member(1)));
  });

  it('completes a rollback after every member crashed at each step', async () => {
    const points: Array<{ name: string; reached: (left: Shard, right: Shard) => boolean }> = [
      { name: 'the map marks the merge to roll back', reached: () => true },
      { name: 'the left group applied the abort', reached: (left, right) => (cluster.member(1).groups.get(left.id)?.group.machine.mergeMarks.aborted.get(right.id) ?? 0) >= right.epoch },
      { name: 'the right group rolled back', reached: (_left, right) => (cluster.member(1).groups.get(right.id)?.group.machine.mergeMarks.rolledBack ?? 0) >= right.epoch },
    ];
    for (const point of points) {
      await write('zebra', `before: ${point.name}`);
      await write('melon', `before: ${point.name}`);
      const { left, right } = await stuckMerge(1, true);
      const attempt = { ...right, epoch: map().shards[2]!.epoch };
      await until(`the rollback reached: ${point.name}`, () => point.reached(left, attempt), 10_000).catch(() => undefined); // it may have passed the point: a later crash is as good
      for (const id of [1, 2, 3]) await cluster.crash(id);
      for (const id of [1, 2, 3]) await cluster.restart(id);
      await cluster.waitForLeader(20_000);
      await until(`the rollback crashed at "${point.name}" finished after the restart`, () => rolledBackEverywhere(right));
      await write('zebra', `after: ${point.name}`);
      await checkAll();
      await sameShardContent(cluster, right.id, 30_000);
    }
  });

  it('ends a merge cancelled at once either merged or rolled back, never both, nothing lost', async (t) => {
    await write('melon', 'before the race');
    await write('zebra', 'before the race');
    const left = shardAt(1);
    const right = shardAt(2);
    await cluster.member(1).shards.merge(left.id);
    await cluster.member(2).shards.cancelMerge(left.id).catch((error: unknown) => {
      // The merge may have finished before the cancel reached the map: nothing to cancel.
      if (!isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID')) throw error;
    });
    await until('the merge ended on every member', () =>
      cluster.running().every((id) => {
        const member = cluster.member(id);
        return member.shards.map !== undefined && !member.shards.map.shards.some((shard) => shard.mergeInto !== undefined) && shardsSettled(member);
      }),
    );
    const merged = !map().shards.some((shard) => shard.id === right.id);
    for (const id of cluster.running()) {
      const leftBounds = cluster.member(id).groups.get(left.id)!.group.machine.bounds!;
      const rightBounds = cluster.member(id).groups.get(right.id)?.group.machine.bounds;
      const rightServes = rightBounds !== undefined && sameShardBounds(rightBounds, right);
      assert.ok(merged ? leftBounds.end === null && !rightServes : sameShardBounds(leftBounds, left) && rightServes, `member ${id}: ${merged ? 'merged' : 'rolled back'}, and only that`);
    }
    t.diagnostic(merged ? 'the left group committed first: merged' : 'the abort came first: rolled back');
    await write('zebra', 'after the race');
    await checkAll();
  });
});

describe('the bound of a merge copy (a copy bound of 4,000 bytes; three members, split key p)', () => {
  let cluster: InProcessCluster;
  before(async () => {
    cluster = await startSharded(3, { flags: { splitKeys: 'p' }, mergeCopyBytesMax: 4000, logLevel: process.env['MERGE_LOG'] ?? 'silent' });
  });
  after(async () => {
    await cluster?.close();
  });

  it('rolls back a merge whose right shard froze above the bound, and merges it once it is below', async () => {
    const value = 'v'.repeat(1000);
    const written = ['q1', 'q2', 'q3', 'q4', 'q5'];
    for (const key of written) await retried(() => cluster.member(1).service.write({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] }));
    const right = cluster.member(1).shards.map!.shards[1]!;
    await cluster.member(1).shards.merge(2);
    await until('the merge above the bound rolled back on every member', () =>
      cluster.running().every((id) => {
        const shard = cluster.member(id).shards.map?.shards.find((each) => each.id === right.id);
        return shard !== undefined && shard.mergeInto === undefined && shard.epoch > right.epoch && shardsSettled(cluster.member(id));
      }),
    );
    for (const key of written) assert.equal((await retried(() => cluster.member(2).service.get(Buffer.from(key))))?.value.toString(), value, key);
    for (const key of written.slice(1)) await retried(() => cluster.member(3).service.write({ ops: [{ type: 'del', key: Buffer.from(key) }] }));
    await cluster.member(1).shards.merge(2);
    await until('the merge below the bound finished on every member', () => cluster.running().every((id) => cluster.member(id).shards.map?.shards.length === 1 && cluster.member(id).groups.get(right.id) === undefined));
    assert.equal((await retried(() => cluster.member(3).service.get(Buffer.from('q1'))))?.value.toString(), value);
  });
});

/**
 * Merges of small neighbours on different members (src/shard/alignment.ts,
 * docs/sharding.md "Merges"), in one process: four real members, split keys
 * "g" and "p" (three shards of three replicas over four members, so
 * neighbours sit on different replica sets), `--shard-merge-bytes` on. Under
 * writers on every member, the meta leader marks a pair for alignment, moves
 * the right shard's replicas onto the left's, merges them, and so on until
 * one shard is left: every acknowledged write reads back afterwards through
 * every member, the alignment was visible in the map (`alignTo`) and is
 * counted in /status figures, and the replica counts end within the count
 * balance's band (⌊T/N⌋..⌈T/N⌉).
 *
 * And an alignment that cannot finish: the target of an alignment move is
 * crashed while the move runs and stays down past `--member-dead-after-ms`:
 * the mark is dropped (counted), the move abandoned, every shard ends with
 * three replicas on the live members, and every acknowledged write reads
 * back.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import type { KvCommand } from '../kv/command.js';
import { sameReplicas, type ShardMap } from '../shard/shard-map.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';

const put = (key: string, value: string): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value) }] });

/**
 * As the client does: a retryable refusal (503s: unavailable, and a group
 * stopped on this member because a move just removed it), a stale route or
 * an unknown outcome is tried again (a put of the same value is idempotent).
 */
async function retried<T>(attempt: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      const retryable = isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE') || isImpulseError(error, 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN') || isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE') || isImpulseError(error, 'IMPULSE_ERR_RAFT_STOPPED');
      if (tries >= 80 || !retryable) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** One shard left, nothing in flight, and every member follows that map. */
function mergedToOne(cluster: InProcessCluster): boolean {
  const maps = cluster.running().map((id) => cluster.member(id).shards.map);
  const first = maps[0];
  return first !== undefined && first.shards.length === 1 && first.shards.every((shard) => shard.move === undefined && shard.alignTo === undefined && shard.mergeInto === undefined) && maps.every((map) => map?.version === first.version);
}

const replicaCounts = (map: ShardMap, members: readonly number[]): number[] => members.map((id) => map.shards.filter((shard) => shard.replicas.includes(id)).length);

describe('merging small neighbours on different members (alignment first)', () => {
  let cluster: InProcessCluster | undefined;
  after(async () => {
    await cluster?.close();
  });

  it('drops an alignment whose move target died: the move is abandoned, every shard back to three live replicas, nothing lost', async () => {
    const running = await InProcessCluster.start(4, { flags: { splitKeys: 'g,p', shardMergeBytes: '1000000', shardSplitBytes: '4000000', shardMergeQuietMs: '0', shardMovesMax: '1', memberDeadAfterMs: '3000' }, logLevel: process.env['ALIGN_LOG'] ?? 'silent' });
    try {
      await running.waitForLeader();
      await until('the map is applied everywhere', () => running.running().every((id) => running.member(id).shards.map !== undefined), 30_000);
      const written = new Map<string, string>();
      for (const key of ['apple', 'kiwi', 'zebra']) {
        await retried(() => running.member(1).service.write(put(key, `${key}-v`)));
        written.set(key, `${key}-v`);
      }
      // The first alignment move seen in flight (its target not promoted yet): its target dies.
      let victim: number | undefined;
      await until('an alignment move is in flight', () => {
        const map = running.member(running.running()[0]!).shards.map;
        const moving = map?.shards.find((shard) => shard.alignTo !== undefined && shard.move !== undefined && !shard.replicas.includes(shard.move.to));
        victim = moving?.move?.to;
        return victim !== undefined;
      }, 60_000);
      await running.crash(victim!);
      const alive = running.running();
      await until('the alignment was dropped and every shard has three replicas on the live members', async () => {
        const map = running.member(alive[0]!).shards.map!;
        const figures = await Promise.all(alive.map(async (id) => (await running.member(id).service.status()).figures ?? {}));
        const dropped = figures.reduce((sum, each) => sum + (each['shard_alignments_dropped'] ?? 0), 0);
        return dropped >= 1 && map.shards.every((shard) => shard.move === undefined && shard.alignTo === undefined && shard.replicas.length === 3 && shard.replicas.every((id) => alive.includes(id)));
      }, 90_000);
      for (const id of alive) {
        for (const [key, value] of written) assert.equal((await retried(() => running.member(id).service.get(Buffer.from(key))))?.value.toString(), value, `${key} through member ${id}`);
      }
    } finally {
      await running.close();
    }
  });

  it('aligns the right shard\'s replicas with the left\'s, merges, and keeps every acknowledged write and the count balance', async () => {
    cluster = await InProcessCluster.start(4, { flags: { splitKeys: 'g,p', shardMergeBytes: '1000000', shardSplitBytes: '4000000', shardMergeQuietMs: '0', shardMovesMax: '2' }, logLevel: process.env['ALIGN_LOG'] ?? 'silent' });
    const running = cluster;
    await running.waitForLeader();
    await until('the map is applied everywhere', () => running.running().every((id) => running.member(id).shards.map !== undefined), 30_000);
    const first = running.member(1).shards.map!;
    assert.equal(first.shards.length, 3);
    assert.ok(first.shards.some((shard, i) => i > 0 && !sameReplicas(shard.replicas, first.shards[i - 1]!.replicas)), 'some neighbours start on different members');
    const written = new Map<string, string>();
    let alignSeen = false;
    let stop = false;
    const failures: unknown[] = [];
    const writers = [1, 2, 3, 4].map(async (member) => {
      try {
        for (let i = 0; !stop; i++) {
          const key = `${'ajqz'[member - 1]}-${member}-${i}`;
          await retried(() => running.member(member).service.write(put(key, `v${i}`)));
          written.set(key, `v${i}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } catch (error) {
        failures.push(error);
      }
    });
    try {
      await until('the three shards merged into one (or a writer failed)', () => {
        alignSeen ||= running.member(1).shards.map?.shards.some((shard) => shard.alignTo !== undefined) ?? false;
        return failures.length > 0 || mergedToOne(running);
      }, 120_000);
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    assert.deepEqual(failures, [], 'no write failed with an error the client does not retry');
    assert.ok(alignSeen, 'an alignment was marked in the map');
    assert.ok(written.size > 0);
    for (const id of running.running()) {
      for (const [key, value] of written) assert.equal((await retried(() => running.member(id).service.get(Buffer.from(key))))?.value.toString(), value, `${key} through member ${id}`);
    }
    const figures = await Promise.all(running.running().map(async (id) => (await running.member(id).service.status()).figures ?? {}));
    const sum = (name: string): number => figures.reduce((total, each) => total + (each[name] ?? 0), 0);
    assert.ok(sum('shard_alignments_started') >= 1 && sum('shard_moves_for_alignment') >= 1 && sum('shard_merges_decided') >= 2, JSON.stringify(figures.map((each) => [each['shard_alignments_started'], each['shard_moves_for_alignment'], each['shard_merges_decided']])));
    // The count balance after the merges: T replicas over N members, each member ⌊T/N⌋..⌈T/N⌉.
    await until('the count balance settled', () => {
      const map = running.member(1).shards.map!;
      const counts = replicaCounts(map, running.running());
      const total = counts.reduce((a, b) => a + b, 0);
      return map.shards.every((shard) => shard.move === undefined) && counts.every((count) => count >= Math.floor(total / 4) && count <= Math.ceil(total / 4));
    }, 30_000);
    assert.equal(running.member(1).shards.map!.shards[0]!.replicas.length, 3, 'the merged shard has its three replicas');
  });
});

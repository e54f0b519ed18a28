/**
 * Checks of in-process sharded clusters shared by the split and merge tests
 * (src/cluster/shard-split.test.ts, shard-merge.test.ts, shard-merge-rollback.test.ts, shard-load-splits.test.ts,
 * shard-split-merge-down.test.ts): starting one settled (`startSharded`), comparing shard contents,
 * and a client's retry of a retryable refusal.
 */
import assert from 'node:assert/strict';
import { isImpulseError } from '../../src/errors.js';
import { contentDigest } from '../../src/kv/digest.js';
import type { Member } from '../../src/cluster/open-member.js';
import { sameShardBounds } from '../../src/shard/shard-map.js';
import { InProcessCluster, type InProcessOptions, until } from './in-process.js';

/** Member `member` hosts every shard of its map it replicates, each with a known leader and bounds equal to its range. */
export function shardsSettled(member: Member): boolean {
  const map = member.shards.map;
  if (map === undefined) return false;
  return map.shards.every((shard) => {
    const hosted = member.groups.get(shard.id);
    const bounds = hosted?.group.machine.bounds;
    return hosted !== undefined && hosted.group.leader !== 0 && bounds !== undefined && sameShardBounds(bounds, shard);
  });
}

/** An in-process sharded cluster of `count` members (`options.flags` name its split keys), its meta leader elected and every member settled on the first map (within `settleTimeoutMs`). */
export async function startSharded(count: number, options: InProcessOptions, settleTimeoutMs = 30_000): Promise<InProcessCluster> {
  const cluster = await InProcessCluster.start(count, options);
  try {
    await cluster.waitForLeader();
    await until('every member settled on the first map', () => cluster.running().every((id) => shardsSettled(cluster.member(id))), settleTimeoutMs);
  } catch (error) {
    await cluster.close(); // the caller's `after` never sees a cluster that failed to settle
    throw error;
  }
  return cluster;
}

/** Every running member's digest of group `id` is the same, once they applied the same index (waiting at most `timeoutMs`). */
export async function sameShardContent(cluster: InProcessCluster, id: number, timeoutMs: number): Promise<void> {
  await until(`group ${id} applied the same index on every member`, () => new Set(cluster.running().map((m) => cluster.member(m).groups.get(id)?.group.machine.appliedIndex)).size === 1, timeoutMs);
  const digests = await Promise.all(cluster.running().map((m) => contentDigest(cluster.member(m).groups.get(id)!.group.machine.machine)));
  assert.equal(new Set(digests.map((d) => d.digest)).size, 1, `group ${id} differs between members`);
}

/**
 * Runs `attempt` as a client that follows stale routes would (the merge
 * tests): a retryable refusal, an unknown outcome or a stale route is tried
 * again, 50 ms apart, at most `triesMax` times; the same attempt must be safe
 * to repeat (a write with its session and seq).
 */
export async function retriedAcrossRoutes<T>(attempt: () => Promise<T>, triesMax = 40): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      const retryable = isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE') || isImpulseError(error, 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN') || isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE');
      if (tries >= triesMax || !retryable) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Runs `attempt` as a client would: a retryable refusal (unavailable, e.g.
 * a shard splitting) or an unknown outcome is tried again, after 50 ms × the
 * tries so far, at most `triesMax` times; the same attempt must be safe to
 * repeat (a write with its session and seq).
 */
export async function retriedLikeClient<T>(attempt: () => Promise<T>, triesMax = 8): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (tries >= triesMax || !(isImpulseError(error, 'IMPULSE_ERR_UNAVAILABLE') || isImpulseError(error, 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN'))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * tries));
    }
  }
}

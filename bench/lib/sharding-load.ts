/**
 * The write load of the sharding benchmarks (sharding-throughput.ts,
 * sharding-profile.ts): PUTs of KEYS keys in turn with 16-byte values, the
 * split keys that cut those keys into equal shards, and the wait until every
 * shard has a leader in every member's view.
 */
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProcessCluster } from '../../testkit/process/cluster-process.js';

export const KEYS = 1000;

const keyName = (i: number): string => `key${String(i).padStart(4, '0')}`;

/** `count - 1` split keys cutting key0000..key0999 into `count` shards of about equal key counts. */
export function splitKeys(count: number): string[] {
  return Array.from({ length: count - 1 }, (_, i) => keyName(Math.round(((i + 1) * KEYS) / count)));
}

/** Writes the wrk script (PUT /kv/keyNNNN in turn, values `value-<counter>`) and returns its path. */
export async function putScript(): Promise<string> {
  const path = join(tmpdir(), 'impulse-sharding-bench-put.lua');
  const lines = [
    'counter = 0',
    'request = function()',
    '  counter = counter + 1',
    `  local key = string.format("/kv/key%04d", counter % ${KEYS})`,
    '  return wrk.format("PUT", key, nil, string.format("value-%010d", counter))',
    'end',
  ];
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

/**
 * Waits (60 s at most) until each of the `members` members sees `shards` shards and every shard
 * has a leader in some member's view (a member names the leaders of the shards it holds a
 * replica of; with more than three members it does not hold them all).
 */
export async function untilLeaders(cluster: ProcessCluster, members: number, shards: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const views = await Promise.all(Array.from({ length: members }, (_, i) => cluster.client(i + 1).shards().catch(() => undefined)));
    const led = new Set(views.flatMap((view) => view?.shards.filter((shard) => shard.leader !== null).map((shard) => shard.id) ?? []));
    if (views.every((view) => view !== undefined && view.shards.length === shards) && led.size === shards) return;
    if (Date.now() > deadline) throw new Error(`the ${shards} shards did not all elect a leader within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * What a leaderless replica acknowledged survives a crash at every I/O point
 * (testkit/vfs/crash-harness.ts): the replica on the lsm engine over MemVfs
 * coordinates writes (each a sibling: blind writes), merges sets from other
 * replicas and holds hints; after a crash and recovery (unsynced data lost, or
 * torn) every write, merged sibling and hint whose promise resolved is there,
 * and the store opens (format key, canonical sets).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import { type MemVfs } from '../../testkit/vfs/mem-vfs.js';
import { sweepCrashPoints } from '../../testkit/vfs/crash-harness.js';
import { SeededRandom } from '../util/random.js';
import { type SiblingSet, liveValues, update } from './dvv.js';
import { Replica } from './replica.js';
import { EngineReplicaStore } from './replica-store.js';

const LIMITS = { keyBytesMax: 32, valueBytesMax: 64 };

/** Acknowledged values per key (data), and per owner:key (hints). */
class AckRecord {
  readonly data = new Map<string, Set<string>>();
  readonly hints = new Map<string, Set<string>>();
  add(map: Map<string, Set<string>>, name: string, value: string): void {
    let values = map.get(name);
    if (values === undefined) map.set(name, (values = new Set()));
    values.add(value);
  }
}

async function open(vfs: MemVfs, sync: 'fsync' | 'none' = 'fsync'): Promise<{ engine: LsmEngine; store: EngineReplicaStore }> {
  const engine = new LsmEngine({ dataDir: 'db', vfs, sync, limits: EngineReplicaStore.engineLimits(LIMITS) });
  await engine.open();
  return { engine, store: await EngineReplicaStore.open(engine, LIMITS, 'db') };
}

async function workload(vfs: MemVfs, record: AckRecord, random: SeededRandom, sync: 'fsync' | 'none' = 'fsync'): Promise<void> {
  const { engine, store } = await open(vfs, sync);
  const replica = new Replica({ nodeId: 1, store, conflicts: 'siblings', wallClockMs: () => 1000 });
  // What the other (simulated) replicas hold per key: the sets they coordinate and send here, with dots that never repeat.
  const remote = new Map<string, SiblingSet>();
  const remoteWrite = (node: number, key: string, value: string): SiblingSet => {
    const name = `${node}/${key}`;
    const set = update(remote.get(name) ?? [], [], node, Buffer.from(value), ++clock);
    remote.set(name, set);
    return set;
  };
  let clock = 0;
  for (let step = 0; step < 36; step++) {
    const key = `k${random.int(4)}`;
    const value = `v${step}`;
    const kind = random.int(3);
    if (kind === 0) {
      await replica.coordinate(Buffer.from(key), [], Buffer.from(value));
      record.add(record.data, key, value);
    } else if (kind === 1) {
      // A set coordinated by node 2, merged here (replication, read repair, handoff).
      await replica.apply(Buffer.from(key), remoteWrite(2 + random.int(2), key, value));
      record.add(record.data, key, value);
    } else {
      await replica.storeHint(3, Buffer.from(key), remoteWrite(4, key, value));
      record.add(record.hints, key, value);
    }
  }
  await engine.close();
}

async function verify(recovered: MemVfs, record: AckRecord): Promise<string | undefined> {
  const { engine, store } = await open(recovered);
  try {
    for (const [key, values] of record.data) {
      const held = new Set(liveValues(await store.read(Buffer.from(key))).map(String));
      for (const value of values) if (!held.has(value)) return `acknowledged ${value} of ${key} is gone (held: ${[...held].join(',')})`;
    }
    for (const [key, values] of record.hints) {
      const held = new Set(liveValues(await store.readHint(3, Buffer.from(key))).map(String));
      for (const value of values) if (!held.has(value)) return `acknowledged hint ${value} of ${key} is gone`;
    }
    return undefined;
  } finally {
    await engine.close();
  }
}

describe('leaderless replica crash safety', () => {
  it('keeps every acknowledged write, merge and hint, crashing at every I/O point', async (t) => {
    const summary = await sweepCrashPoints({
      seed: 12,
      ...(process.env['IMPULSE_CRASH_SWEEP'] === 'full' ? {} : { maxPoints: 60 }),
      modes: ['lose-unsynced', 'torn'],
      newRecord: () => new AckRecord(),
      workload: (vfs, record, context) => workload(vfs, record, new SeededRandom(context.random.int(2 ** 31))),
      verify: (recovered, record) => verify(recovered, record),
    });
    t.diagnostic(`${summary.ioOperations} I/O operations; ${summary.points} crash points; ${summary.checks} recoveries checked`);
    assert.ok(summary.ioOperations > 30, `the workload does ${summary.ioOperations} I/O operations`);
  });

  it('catches a replica that acknowledges before its writes are durable (its engine without fsync)', async () => {
    const summary = await sweepCrashPoints({
      seed: 12,
      maxPoints: 30,
      modes: ['lose-unsynced'],
      collectFailures: true,
      newRecord: () => new AckRecord(),
      workload: (vfs, record, context) => workload(vfs, record, new SeededRandom(context.random.int(2 ** 31)), 'none'),
      verify: (recovered, record) => verify(recovered, record),
    });
    assert.ok(summary.failures.length > 0, 'the sweep saw acknowledged writes lost');
  });
});

/**
 * The running byte count of a shard (shard-size.ts), on real state machines
 * (memory engine; lsm on MemVfs where the disk bytes matter) through the
 * same apply path as a Raft group (RaftKvMachine):
 *
 *   - against a model (fast-check): random puts, overwrites and deletes of
 *     keys of random sizes, splits and checks. After every check the
 *     estimate is at least the true size inside the bounds (never misses a
 *     split); a check that splits names the model's middle key and the size
 *     is past the threshold; a check that does not leaves the size at most
 *     threshold + threshold / RESCAN_FRACTION; scans stay within one count a
 *     threshold / RESCAN_FRACTION written bytes (plus one per split);
 *   - a shard under the threshold is scanned once, then never while it
 *     stays under (the old check scanned every round the disk filter passed);
 *   - after a split, the frozen right-hand keys are not counted: one scan,
 *     then the estimate is the left part's exact size;
 *   - a snapshot installed over a counted replica voids the count;
 *   - a shard the lsm engine stores in fewer disk bytes than the threshold,
 *     its keys and values past it, splits (the disk bytes are no bound).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { type KvCommand, encodeCommand } from '../kv/command.js';
import { DirectoryEngineHome, MemoryEngineHome } from '../kv/engine-home.js';
import { KvStateMachine, engineLimitsFor } from '../kv/state-machine.js';
import type { Entry } from '../raft/types.js';
import { SHARD_BOUNDS_META_NAME, type ShardBounds, encodeShardBounds, shardContains } from '../shard/shard-map.js';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import { createEngine } from '../storage/registry.js';
import { SeededRandom } from '../util/random.js';
import { TEST_LIMITS } from '../../testkit/cluster/in-process.js';
import { MemVfs } from '../../testkit/vfs/mem-vfs.js';
import { encodeClusterCommand } from './log-entries.js';
import { MEMBERSHIP_META_NAME, encodeMembership, initialMembership } from './membership.js';
import type { SnapshotImage } from '../raft/driver-seams.js';
import type { ImagePayload } from './image-stream.js';
import { RaftKvMachine } from './raft-kv-machine.js';
import { RECOUNT_MIN_BYTES, RESCAN_FRACTION, ShardSizes } from './shard-size.js';

const engineLimits = engineLimitsFor(TEST_LIMITS);
const WHOLE: ShardBounds = { start: Buffer.alloc(0), end: null };

/** A shard group's state machine bootstrapped with `bounds`, and a way to apply log entries to it as a Raft group does. */
class Shard {
  private nextIndex = 2;
  private constructor(readonly raft: RaftKvMachine) {}

  static async open(engine: 'memory' | 'lsm', bounds: ShardBounds = WHOLE): Promise<Shard> {
    const vfs = new MemVfs({ random: new SeededRandom(3) });
    const home =
      engine === 'memory'
        ? new MemoryEngineHome(() => createEngine('memory', { limits: engineLimits }))
        : new DirectoryEngineHome(vfs, 'store', (dir) => new LsmEngine({ dataDir: dir, vfs, limits: engineLimits, memtableBytes: 4096 }));
    const machine = await KvStateMachine.open({ home, limits: TEST_LIMITS });
    const membership = encodeMembership(initialMembership(new Map([[1, '127.0.0.1:1']])));
    await machine.applyBatch([{ index: 1, term: 1, type: 'meta', name: MEMBERSHIP_META_NAME, value: membership, more: [{ name: SHARD_BOUNDS_META_NAME, value: encodeShardBounds(bounds) }] }]);
    const raft = await RaftKvMachine.open({ machine, limits: TEST_LIMITS, logger: pino({ level: 'silent' }), guard: (work) => work(), flushEntries: 1_000 });
    return new Shard(raft);
  }

  async write(command: KvCommand): Promise<void> {
    await this.apply(encodeCommand(command));
  }

  async split(key: Buffer, rightId: number): Promise<void> {
    await this.apply(encodeClusterCommand({ type: 'split', key, rightId }));
  }

  private apply(data: Uint8Array): Promise<void> {
    const entry: Entry = { kind: 'normal', index: this.nextIndex++, term: 1, data };
    return new Promise((resolve, reject) => this.raft.apply([entry], (error) => (error === null ? resolve() : reject(error))));
  }
}

const put = (key: string, value: Buffer): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from(key), value }] });
const del = (key: string): KvCommand => ({ ops: [{ type: 'del', key: Buffer.from(key) }] });

/** The model: key -> value bytes; its size and middle key inside `bounds` as shard-size.ts defines them. */
function modelSize(model: Map<string, number>, bounds: ShardBounds): { bytes: number; middle: string | undefined } {
  const keys = [...model.keys()].filter((key) => shardContains(bounds, Buffer.from(key))).sort();
  const bytes = keys.reduce((sum, key) => sum + key.length + model.get(key)!, 0);
  let seen = 0;
  for (const key of keys) {
    seen += key.length + model.get(key)!;
    if (seen >= bytes / 2) return { bytes, middle: Buffer.from(key).compare(bounds.start) > 0 ? key : undefined };
  }
  return { bytes, middle: undefined };
}

type Step =
  | { readonly kind: 'put'; readonly key: number; readonly valueBytes: number }
  | { readonly kind: 'del'; readonly key: number }
  | { readonly kind: 'split'; readonly key: number }
  | { readonly kind: 'check' };

const KEY_COUNT = 12;
const keyName = (index: number): string => `k${String(index).padStart(2, '0')}`;
const LIMIT = 4_000;

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('put' as const), key: fc.nat(KEY_COUNT - 1), valueBytes: fc.integer({ min: 0, max: 900 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('del' as const), key: fc.nat(KEY_COUNT - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('split' as const), key: fc.integer({ min: 1, max: KEY_COUNT - 1 }) }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'check' as const }) },
);

describe('the running byte count of a shard', () => {
  it('never falls below the true size, splits at the model\'s middle key, and scans boundedly (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60 }), async (steps) => {
        const shard = await Shard.open('memory');
        const sizes = new ShardSizes(LIMIT);
        const model = new Map<string, number>();
        let bounds = WHOLE;
        let written = 0;
        let splits = 0;
        for (const s of steps) {
          if (s.kind === 'put') {
            await shard.write(put(keyName(s.key), Buffer.alloc(s.valueBytes, 0x61)));
            model.set(keyName(s.key), s.valueBytes);
            written += keyName(s.key).length + s.valueBytes;
          } else if (s.kind === 'del') {
            await shard.write(del(keyName(s.key)));
            model.delete(keyName(s.key));
          } else if (s.kind === 'split') {
            const key = Buffer.from(keyName(s.key));
            if (!shardContains(bounds, key) || key.equals(bounds.start)) continue;
            await shard.split(key, 10 + splits++);
            bounds = { start: bounds.start, end: key };
          } else {
            const truth = modelSize(model, bounds);
            const key = await sizes.check(shard.raft, bounds);
            if (key !== undefined) {
              assert.ok(truth.bytes > LIMIT, `split at ${key.toString()} with ${truth.bytes} bytes`);
              assert.equal(key.toString(), truth.middle);
            } else {
              assert.ok(truth.bytes <= LIMIT + LIMIT / RESCAN_FRACTION || truth.middle === undefined, `no split with ${truth.bytes} bytes`);
              const estimate = sizes.estimate(shard.raft);
              assert.ok(estimate !== undefined && estimate >= truth.bytes, `estimate ${estimate} below ${truth.bytes}`);
            }
          }
        }
        // A count per threshold/16 written bytes, one after every split and at the start; each split asked for adds a middle-key scan and a recount.
        const counts = 1 + splits + Math.floor(written / (LIMIT / RESCAN_FRACTION));
        assert.ok(sizes.scans <= 3 * counts, `${sizes.scans} scans for ${written} bytes written and ${splits} splits`);
      }),
      { numRuns: 60, seed: 1313 },
    );
  });

  it('scans a shard under the threshold once, then not while the writes keep it under', async () => {
    const shard = await Shard.open('memory');
    const sizes = new ShardSizes(64 * 1024);
    for (let round = 0; round < 50; round++) {
      await shard.write(put(`key${round % 10}`, Buffer.alloc(200, 0x62))); // 10 keys overwritten: ~2 KiB live
      assert.equal(await sizes.check(shard.raft, WHOLE), undefined);
    }
    assert.equal(sizes.scans, 1, 'one count, then the estimate');
    assert.equal(sizes.estimate(shard.raft), 10 * (4 + 200) + 40 * (4 + 200), 'the base plus every put since (an upper bound)');
  });

  it('overwrites near the threshold are counted again once per threshold/16 bytes written, not every check', async () => {
    const shard = await Shard.open('memory');
    const limit = 16 * 1024;
    const sizes = new ShardSizes(limit);
    for (let i = 0; i < 15; i++) await shard.write(put(`key${String(i).padStart(2, '0')}`, Buffer.alloc(1_000, 0x63))); // ~15 KB
    assert.equal(await sizes.check(shard.raft, WHOLE), undefined);
    let written = 0;
    for (let round = 0; round < 100; round++) {
      await shard.write(put('key00', Buffer.alloc(100 + (round % 2), 0x64))); // the size barely moves
      written += 5 + 100 + (round % 2);
      assert.equal(await sizes.check(shard.raft, WHOLE), undefined);
    }
    assert.ok(sizes.scans <= 1 + Math.ceil(written / (limit / RESCAN_FRACTION)), `${sizes.scans} scans`);
    assert.ok(sizes.scans >= 2, 'the estimate passed the threshold and a count followed');
  });

  it('without a threshold, counts a shard once, then again only after more bytes than its counted size (and RECOUNT_MIN_BYTES) were written (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ key: fc.nat(KEY_COUNT - 1), valueBytes: fc.integer({ min: 0, max: 200_000 }) }), { minLength: 1, maxLength: 40 }), async (puts) => {
        const shard = await Shard.open('memory');
        const sizes = new ShardSizes(1);
        const model = new Map<string, number>();
        let scannedBytes = await sizes.recount(shard.raft, WHOLE);
        let counted = 0; // the true size at the last count
        let writtenBytes = 0;
        for (const { key, valueBytes } of puts) {
          await shard.write(put(keyName(key), Buffer.alloc(valueBytes, 0x61)));
          model.set(keyName(key), valueBytes);
          writtenBytes += keyName(key).length + valueBytes;
          const { bytes } = modelSize(model, WHOLE);
          const scanned = await sizes.recount(shard.raft, WHOLE);
          if (scanned > 0) counted = bytes;
          scannedBytes += scanned;
          const estimate = sizes.estimate(shard.raft)!;
          assert.ok(estimate >= bytes, `estimate ${estimate} below the true ${bytes}`);
          // Overstated by at most the writes since the last count, which are at most that count (or the minimum).
          assert.ok(estimate <= bytes + Math.max(counted, RECOUNT_MIN_BYTES) + Math.max(0, counted - bytes), `estimate ${estimate}, true ${bytes}, counted ${counted}`);
        }
        // Amortised: what the recounts read is at most twice what was written (each reads at most twice the writes that made it due).
        assert.ok(scannedBytes <= 2 * writtenBytes, `scanned ${scannedBytes} bytes for ${writtenBytes} written`);
      }),
      { numRuns: 30 },
    );
  });

  it('does not count the frozen right-hand keys after a split', async () => {
    const shard = await Shard.open('memory');
    const sizes = new ShardSizes(16 * 1024);
    for (let i = 0; i < 10; i++) await shard.write(put(`k${i}`, Buffer.alloc(1_000, 0x65))); // 10 x 1002 bytes
    assert.equal(await sizes.check(shard.raft, WHOLE), undefined);
    assert.equal(sizes.estimate(shard.raft), 10 * 1002);
    await shard.split(Buffer.from('k5'), 7); // an operator's split: [-inf, k5) stays, [k5, +inf) is frozen here
    const left: ShardBounds = { start: Buffer.alloc(0), end: Buffer.from('k5') };
    assert.equal(sizes.estimate(shard.raft), undefined, 'the split voided the count');
    assert.equal(await sizes.check(shard.raft, left), undefined);
    assert.equal(sizes.scans, 2, 'one scan after the split');
    assert.equal(sizes.estimate(shard.raft), 5 * 1002, 'only the keys inside the bounds');
    assert.equal(await sizes.check(shard.raft, left), undefined);
    assert.equal(sizes.scans, 2, 'and then no scan');
  });

  it('a check past the threshold names the middle key by bytes and counts again at the next check', async () => {
    const shard = await Shard.open('memory');
    const sizes = new ShardSizes(8 * 1024);
    for (let i = 0; i < 10; i++) await shard.write(put(`k${i}`, Buffer.alloc(1_000, 0x65)));
    assert.equal((await sizes.check(shard.raft, WHOLE))?.toString(), 'k4');
    assert.equal(sizes.scans, 2, 'the count and the middle key');
    assert.equal((await sizes.check(shard.raft, WHOLE))?.toString(), 'k4', 'a split not applied yet (or failed) is asked for again');
  });

  it('a snapshot installed over a counted replica voids its count (a follower caught up by snapshot, then leading)', async () => {
    const follower = await Shard.open('memory');
    const sizes = new ShardSizes(64 * 1024);
    await follower.write(put('a', Buffer.alloc(100, 0x67)));
    assert.equal(await sizes.check(follower.raft, WHOLE), undefined);
    assert.equal(sizes.estimate(follower.raft), 101);
    const leader = await Shard.open('memory');
    for (let i = 0; i < 20; i++) await leader.write(put(`k${String(i).padStart(2, '0')}`, Buffer.alloc(1_000, 0x68)));
    const image = await new Promise<SnapshotImage<ImagePayload>>((resolve, reject) => leader.raft.snapshot((error, made) => (error === null ? resolve(made!) : reject(error))));
    await new Promise<void>((resolve, reject) => follower.raft.stageSnapshot(image, (error) => (error === null ? resolve() : reject(error))));
    await new Promise<void>((resolve, reject) => follower.raft.installSnapshot(image.meta, (error) => (error === null ? resolve() : reject(error))));
    assert.equal(sizes.estimate(follower.raft), undefined, 'the count from before the snapshot is void');
    assert.equal(await sizes.check(follower.raft, WHOLE), undefined);
    assert.equal(sizes.estimate(follower.raft), 20 * 1003, 'counted again: the snapshot\'s keys');
  });

  it('splits a shard whose engine stores it in fewer disk bytes than its keys and values (the disk bytes are no bound)', async () => {
    const shard = await Shard.open('lsm');
    for (let i = 0; i < 100; i++) await shard.write(put(`key${String(i).padStart(13, '0')}`, Buffer.alloc(1_000, 0x66))); // 100 x 1016 bytes of keys and values
    await shard.raft.machine.flush();
    const diskBytes = (await shard.raft.machine.stats()).diskBytes;
    assert.ok(diskBytes !== undefined && diskBytes < 100 * 1016, `the lsm engine stores it in ${diskBytes} bytes, fewer than its keys and values`);
    const sizes = new ShardSizes(diskBytes); // the disk bytes are at the threshold, the keys and values past it: the old disk filter never scanned
    assert.equal((await sizes.check(shard.raft, WHOLE))?.toString(), `key${String(49).padStart(13, '0')}`, 'split at its middle key all the same');
  });
});

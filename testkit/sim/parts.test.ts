/** Unit tests of the simulator's small parts: the event agenda and the key-value state machine. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../src/util/random.js';
import { EventQueue } from './event-queue.js';
import type { SnapshotImage } from '../../src/raft/driver-seams.js';
import type { Entry } from '../../src/raft/types.js';
import { decodeCommand, digestState, encodeCommand, KvStateMachine, SIM_SNAPSHOT_CHUNK_BYTES, type KvWrite, type SimImagePayload } from './kv.js';

test('the event queue pops by time, and by scheduling order on ties', () => {
  const queue = new EventQueue();
  const random = new SeededRandom(9);
  const scheduled: { time: number; order: number }[] = [];
  for (let order = 0; order < 500; order++) {
    const time = random.int(50);
    scheduled.push({ time, order });
    queue.push(time, () => undefined);
  }
  const popped: number[] = [];
  for (let event = queue.pop(); event !== undefined; event = queue.pop()) popped.push(event.timeMs * 1000 + event.seq);
  const expected = scheduled.map(({ time, order }) => time * 1000 + order).sort((a, b) => a - b);
  assert.deepEqual(popped, expected);
});

test('the key-value state machine applies put, delete and compare-and-set, and its image round-trips through stage and install', () => {
  const conf = { voters: [1, 2, 3], learners: [] };
  const syncs: (() => void)[] = [];
  const kv = new KvStateMachine(conf, (complete) => syncs.push(complete));
  let index = 0;
  const write = (w: KvWrite): Entry => ({ kind: 'normal', index: ++index, term: 1, data: encodeCommand({ clientId: 1, requestId: index, write: w }) });
  const results: unknown[] = [];
  kv.apply([write({ kind: 'cas', key: 'k', expected: null, value: 'v1' }), write({ kind: 'cas', key: 'k', expected: null, value: 'v2' })], (error, out) => {
    assert.equal(error, null);
    results.push(...out!);
  });
  kv.apply([write({ kind: 'cas', key: 'k', expected: 'v1', value: 'v2' }), write({ kind: 'put', key: 'j', value: 'x' })], (_error, out) => results.push(...out!));
  assert.deepEqual(results, [{ kind: 'cas', ok: true }, { kind: 'cas', ok: false }, { kind: 'cas', ok: true }, { kind: 'put' }]);
  assert.equal(kv.get('k'), 'v2');
  assert.equal(kv.durableAppliedIndex(), 0, 'nothing durable before its sync');
  syncs.shift()!();
  assert.equal(kv.durableAppliedIndex(), 2, 'the first batch is durable');
  // A crash keeps the durable state plus a prefix of the unsynced batches.
  kv.crash(new SeededRandom(3));
  assert.ok(kv.state.appliedIndex === 2 || kv.state.appliedIndex === 4);
  let image: SnapshotImage<SimImagePayload> | undefined;
  kv.snapshot((_error, made) => (image = made));
  assert.ok(image!.payload.length > 1 && image!.payload.every((chunk) => chunk.length <= SIM_SNAPSHOT_CHUNK_BYTES), 'the image comes in small chunks');
  const other = new KvStateMachine(conf, (complete) => complete());
  other.stageSnapshot(image!, (error) => assert.equal(error, null));
  other.installSnapshot(image!.meta, (error) => assert.equal(error, null));
  assert.equal(digestState(other.state), digestState(kv.state));
  assert.equal(other.durableAppliedIndex(), image!.meta.index);
  other.installSnapshot({ ...image!.meta, index: 99 }, (error) => assert.ok(error !== null, 'no staged image at 99'));
  const command = { clientId: 3, requestId: 7, write: { kind: 'put', key: 'a', value: 'b' } } as const;
  assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  assert.equal(decodeCommand(new Uint8Array(0)), null, 'the no-op decodes to nothing');
});

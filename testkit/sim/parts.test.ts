/** Unit tests of the simulator's small parts: the event agenda and the key-value state machine. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../src/util/random.js';
import { EventQueue } from './event-queue.js';
import { decodeCommand, encodeCommand, KvStateMachine } from './kv.js';

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

test('the key-value state machine implements put, delete and compare-and-set, and snapshots round-trip', () => {
  const kv = new KvStateMachine();
  assert.deepEqual(kv.apply({ kind: 'cas', key: 'k', expected: null, value: 'v1' }), { kind: 'cas', ok: true });
  assert.deepEqual(kv.apply({ kind: 'cas', key: 'k', expected: null, value: 'v2' }), { kind: 'cas', ok: false });
  assert.deepEqual(kv.apply({ kind: 'cas', key: 'k', expected: 'v1', value: 'v2' }), { kind: 'cas', ok: true });
  kv.apply({ kind: 'put', key: 'j', value: 'x' });
  assert.equal(kv.get('k'), 'v2');
  const restored = KvStateMachine.fromSnapshot(kv.snapshot());
  assert.equal(restored.get('k'), 'v2');
  assert.equal(restored.get('j'), 'x');
  kv.apply({ kind: 'delete', key: 'k' });
  assert.equal(kv.get('k'), null);
  assert.equal(restored.get('k'), 'v2', 'a snapshot is a copy');
  const command = { clientId: 3, requestId: 7, input: { kind: 'put', key: 'a', value: 'b' } } as const;
  assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  assert.equal(decodeCommand(new Uint8Array(0)), null, 'the no-op decodes to nothing');
});

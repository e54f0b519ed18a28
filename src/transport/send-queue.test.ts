import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SeededRandom } from '../util/random.js';
import { Backoff } from './backoff.js';
import { SendQueue } from './send-queue.js';

describe('SendQueue', () => {
  it('property: FIFO, never over its bounds, offer refuses exactly when a bound would be crossed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.array(fc.oneof(fc.record({ offer: fc.integer({ min: 1, max: 300 }) }), fc.record({ take: fc.integer({ min: 1, max: 1000 }) }), fc.constant({ clear: true })), { maxLength: 200 }),
        (messagesMax, bytesMax, ops) => {
          const queue = new SendQueue(messagesMax, bytesMax);
          const model: Buffer[] = [];
          let serial = 0;
          for (const op of ops) {
            if ('offer' in op) {
              const frame = Buffer.alloc(op.offer, serial++ & 255);
              const fits = model.length < messagesMax && model.reduce((sum, f) => sum + f.length, 0) + frame.length <= bytesMax;
              assert.equal(queue.offer({ frame, channel: 'c' }), fits);
              if (fits) model.push(frame);
            } else if ('take' in op) {
              const batch = queue.takeBatch(op.take);
              const expected: Buffer[] = [];
              let bytes = 0;
              while (model.length > 0 && (expected.length === 0 || bytes + model[0]!.length <= op.take)) {
                bytes += model[0]!.length;
                expected.push(model.shift()!);
              }
              assert.deepEqual(batch, expected);
            } else {
              assert.equal(queue.clear().length, model.length);
              model.length = 0;
            }
            assert.equal(queue.length, model.length);
            assert.equal(queue.bytes, model.reduce((sum, f) => sum + f.length, 0));
            assert.ok(queue.length <= messagesMax && queue.bytes <= bytesMax);
          }
        },
      ),
    );
  });
});

describe('Backoff', () => {
  it('grows exponentially with jitter in [base/2, base], never above max, and resets', () => {
    const backoff = new Backoff(new SeededRandom(1), { initialMs: 100, maxMs: 3000 });
    const bases = [100, 200, 400, 800, 1600, 3000, 3000, 3000];
    const delays = bases.map((base) => {
      const delay = backoff.nextDelayMs();
      assert.ok(delay >= base / 2 && delay <= base, `${delay} outside [${base / 2}, ${base}]`);
      return delay;
    });
    assert.ok(new Set(delays.slice(5)).size > 1, 'jittered: equal bases give different delays');
    for (let i = 0; i < 100; i++) assert.ok(backoff.nextDelayMs() <= 3000);
    backoff.reset();
    assert.ok(backoff.nextDelayMs() <= 100);
  });
});

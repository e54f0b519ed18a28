import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EndOfTurn } from './end-of-turn.js';

describe('EndOfTurn', () => {
  it('runs the items of a turn in its check phase, in order, after its microtasks; items added while it runs go to the next turn', async () => {
    const log: string[] = [];
    await new Promise<void>((resolve) => {
      const queue = new EndOfTurn<string>((item) => {
        log.push(`run ${item}`);
        if (item === 'b') queue.add('added while running');
        if (item === 'added while running') resolve();
      });
      setTimeout(() => {
        queue.add('a');
        queue.add('b');
        queueMicrotask(() => log.push('microtask'));
        // Scheduled after the queue's own immediate of this turn: runs after it, in the same check phase.
        setImmediate(() => log.push('immediate after the queue'));
      }, 0);
    });
    assert.deepEqual(log, ['microtask', 'run a', 'run b', 'immediate after the queue', 'run added while running']);
  });
});

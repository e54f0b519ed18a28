import assert from 'node:assert/strict';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { ManualClock } from '../../testkit/transport/harness.js';
import type { NodeId } from '../raft/types.js';
import { LeaderWatch } from './waits.js';

/** A live view of the group's leader that fails the test instead of hanging it when asked in a loop. */
function liveLeader(): { current: () => NodeId; set(leader: NodeId): void; readonly calls: number } {
  let leader: NodeId = 0;
  let calls = 0;
  return {
    current: () => {
      if (++calls > 100) throw new Error('awaitLeader asked the live view 100 times without waiting: it spins');
      return leader;
    },
    set: (next) => void (leader = next),
    get calls() {
      return calls;
    },
  };
}

/** What `promise` settled with so far (undefined while pending). */
function settledLater<T>(promise: Promise<T>): { value: T | Error | undefined } {
  const outcome: { value: T | Error | undefined } = { value: undefined };
  promise.then(
    (value) => (outcome.value = value),
    (error: Error) => (outcome.value = error),
  );
  return outcome;
}

describe('LeaderWatch.awaitLeader', () => {
  it('waits when the last notification named a leader the group no longer has (it used to spin, starving the process)', async () => {
    const clock = new ManualClock();
    const watch = new LeaderWatch(clock, 8);
    watch.notify(3, 5); // the group last told of leader 3 in term 5 ...
    const live = liveLeader(); // ... but its core has since lost the leader (live view: none)
    const outcome = settledLater(watch.awaitLeader(live.current, 1000, () => new Error('no leader in time')));
    await nextMacrotask();
    assert.equal(outcome.value, undefined, 'still waiting: no leader is known');
    assert.ok(live.calls <= 2, `the live view was asked ${live.calls} times`);
    live.set(2);
    watch.notify(2, 6);
    await nextMacrotask();
    assert.equal(outcome.value, 2);
  });

  it('answers at once from the live view, waits out a notification the live view no longer confirms, and times out', async () => {
    const clock = new ManualClock();
    const watch = new LeaderWatch(clock, 8);
    const live = liveLeader();
    live.set(1);
    assert.equal(await watch.awaitLeader(live.current, 1000, () => new Error('late')), 1);
    live.set(0);
    const outcome = settledLater(watch.awaitLeader(live.current, 1000, () => new Error('no leader in time')));
    watch.notify(1, 2); // a notification, but the live view already lost that leader again
    await nextMacrotask();
    assert.equal(outcome.value, undefined);
    clock.advance(1000);
    await nextMacrotask();
    assert.match(String(outcome.value as unknown), /Error: no leader in time/);
  });
});

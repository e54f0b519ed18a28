import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeLiveness } from './node-liveness.js';

test('silent: a peer unheard for more than the bound; never heard counts from the start', () => {
  const liveness = new NodeLiveness(3);
  for (let i = 0; i < 3; i++) liveness.tick();
  assert.equal(liveness.silent(2), false);
  liveness.tick();
  assert.equal(liveness.silent(2), true);
  liveness.heard(2);
  assert.equal(liveness.silent(2), false);
});

test('dialsFailing: only a dial failure since the last look AND a peer quiet for longer than quietTicks', () => {
  const liveness = new NodeLiveness(10);
  liveness.heard(2);
  assert.equal(liveness.dialsFailing(2, 5, 2), false, 'the first look only records the count');
  liveness.tick();
  liveness.tick();
  liveness.tick();
  assert.equal(liveness.dialsFailing(2, 5, 2), false, 'no new failure');
  assert.equal(liveness.dialsFailing(2, 6, 2), true, 'a new failure from a peer quiet for 3 > 2 ticks');
  liveness.heard(2);
  assert.equal(liveness.dialsFailing(2, 7, 2), false, 'a new failure, but the peer spoke just now (its port refused once, it is alive)');
  liveness.retain(new Set([3]));
  assert.equal(liveness.dialsFailing(2, 9, 0), false, 'a forgotten peer starts over');
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Clock, TimerHandle } from '../util/clock.js';
import { TEST_BUG_NAMES, parseTestBugs } from './bugs.js';
import { applyLine } from './control.js';
import { parseDialVia } from './dial-via.js';
import { FaultClock } from './fault-clock.js';
import { parseTestHooks } from './test-hooks.js';

/** A base clock the test moves by hand. */
class ManualClock implements Clock {
  time = 1000;
  private timers: { at: number; callback: () => void; live: boolean }[] = [];
  now(): number {
    return this.time;
  }
  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer = { at: this.time + delayMs, callback, live: true };
    this.timers.push(timer);
    return { cancel: () => void (timer.live = false) };
  }
  advance(ms: number): void {
    this.time += ms;
    for (;;) {
      const due = this.timers.filter((timer) => timer.live && timer.at <= this.time).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) return;
      due.live = false;
      due.callback();
    }
  }
}

describe('FaultClock', () => {
  it('runs at its rate, jumps forward, and fires the timers a jump passes at once', () => {
    const base = new ManualClock();
    const clock = new FaultClock(base);
    const fired: string[] = [];
    clock.setTimer(1000, () => fired.push('a'));
    clock.setTimer(10_000, () => fired.push('b'));
    clock.setRate(2);
    base.advance(400); // 800 ms of fault time
    assert.equal(clock.now(), 1800);
    assert.deepEqual(fired, []);
    base.advance(100); // 1000
    assert.deepEqual(fired, ['a']);
    clock.jump(9000);
    base.advance(0);
    assert.deepEqual(fired, ['a', 'b']);
    assert.equal(clock.now(), 1000 + 1000 + 9000);
  });

  it('never goes backwards: a slow rate, a strobe and a reset keep time monotonic', () => {
    const base = new ManualClock();
    const clock = new FaultClock(base);
    let last = clock.now();
    clock.setRate(0.5);
    clock.startStrobe(50, 30);
    for (let i = 0; i < 40; i++) {
      base.advance(7);
      assert.ok(clock.now() >= last);
      last = clock.now();
    }
    clock.reset();
    const before = clock.now();
    base.advance(100);
    assert.equal(clock.now(), before + 100, 'rate 1 and no more jumps after a reset');
    assert.equal(clock.rate, 1);
    assert.throws(() => clock.jump(-5), RangeError);
    assert.throws(() => clock.setRate(0), RangeError);
  });
});

describe('test hook flags', () => {
  it('parse the dial overrides and refuse malformed ones', () => {
    const overrides = parseDialVia('127.0.0.1:7172=127.0.0.1:41002, 127.0.0.1:7173=127.0.0.1:41003');
    assert.deepEqual(overrides.get('127.0.0.1:7172'), { host: '127.0.0.1', port: 41002 });
    assert.throws(() => parseDialVia('127.0.0.1:7172'), /look like/);
    assert.throws(() => parseDialVia('127.0.0.1:7172=x:0'), /IMPULSE_ERR_CONFIG_INVALID|not host:port/);
    assert.throws(() => parseDialVia('1.1.1.1:1=1.1.1.1:2,1.1.1.1:1=1.1.1.1:3'), /twice/);
  });

  it('parse the bug switches and refuse unknown names', () => {
    assert.deepEqual(parseTestBugs('no-check-quorum').overrides, { checkQuorum: false, mutations: { readsWithoutReadIndex: true } });
    assert.deepEqual(parseTestBugs('ack-before-majority').overrides, { mutations: { commitOnLeaderAlone: true } });
    assert.deepEqual(parseTestBugs('ack-before-w,anti-entropy-skips-range', 'leaderless').leaderless, { acknowledgeEarly: true, antiEntropySkipsOddLeaves: true });
    assert.equal(TEST_BUG_NAMES.length, 6);
    assert.throws(() => parseTestBugs('nope'), /--test-bug must name/);
    assert.throws(() => parseTestBugs('ack-before-w'), /ack-before-w is a bug of leaderless members; this member runs --replication raft/);
    assert.throws(() => parseTestBugs('no-check-quorum', 'leaderless'), /a bug of raft members/);
  });

  it('are off without a flag, and only for cluster members', () => {
    assert.equal(parseTestHooks({}, true), undefined);
    assert.throws(() => parseTestHooks({ testControl: true }, false), /cluster members/);
  });

  it('control commands drive the clock and the disk; bad ones change nothing', () => {
    const base = new ManualClock();
    const clock = new FaultClock(base);
    const specs: string[] = [];
    const targets = { clock, disk: { apply: (spec: string) => (specs.push(spec), spec) }, logger: pino({ level: 'silent' }) };
    applyLine('{"clock":{"rate":3}}', targets);
    assert.equal(clock.rate, 3);
    applyLine('{"clock":{"rate":300}}', targets);
    applyLine('not json', targets);
    applyLine('{"clock":{"jumpMs":"5"}}', targets);
    assert.equal(clock.rate, 3);
    applyLine('{"clock":"reset"}', targets);
    assert.equal(clock.rate, 1);
    applyLine('{"disk":"fsync-error@p=1"}', targets);
    applyLine('{"disk":""}', targets);
    assert.deepEqual(specs, ['fsync-error@p=1', '']);
  });
});

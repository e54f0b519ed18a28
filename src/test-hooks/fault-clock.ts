/**
 * TEST-ONLY. A `Clock` whose time a chaos run can disturb while the process
 * runs (`impulse serve --test-control`, src/test-hooks/control.ts): it jumps
 * forward, runs fast or slow, or strobes (jumps forward again and again).
 * Off unless the test-only flag is given; `impulse serve` then hands it to the
 * node runtime in place of the `SystemClock`.
 *
 * The `Clock` seam is monotonic (like CLOCK_MONOTONIC, which is what
 * `performance.now()` reads), so every fault here keeps time monotonic: a
 * wall-clock step backwards never reaches a monotonic clock, and a fault the
 * contract rules out would test nothing the product promises. A "strobe" is
 * therefore a train of forward jumps, not a clock that goes back and forth.
 *
 * Semantics: fault time = origin + (real elapsed since the last change) x rate
 * + the jumps so far. A timer is due at a fault-time deadline; whenever the
 * rate changes or time jumps, every pending timer is rescheduled against the
 * new mapping, so a jump fires the timers it jumped over at once and a fast
 * clock fires them sooner — as timers on a host with a disturbed clock would.
 */
import type { Clock, TimerHandle } from '../util/clock.js';

/** Fastest and slowest rates accepted, and the largest single jump (a test hook, not a time machine). */
export const CLOCK_RATE_MIN = 0.1;
export const CLOCK_RATE_MAX = 10;
export const CLOCK_JUMP_MS_MAX = 3_600_000;
/** Shortest strobe period, ms: a strobe faster than this would mostly burn CPU. */
export const STROBE_PERIOD_MS_MIN = 10;

interface PendingTimer {
  readonly deadline: number;
  readonly callback: () => void;
  real: TimerHandle | undefined;
}

export class FaultClock implements Clock {
  /** Fault time at `anchorReal`. */
  private anchorFault: number;
  private anchorReal: number;
  private rateValue = 1;
  private readonly pending = new Set<PendingTimer>();
  private strobe: TimerHandle | undefined;

  constructor(private readonly base: Clock) {
    this.anchorReal = base.now();
    this.anchorFault = this.anchorReal;
  }

  get rate(): number {
    return this.rateValue;
  }

  now(): number {
    return this.anchorFault + (this.base.now() - this.anchorReal) * this.rateValue;
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer: PendingTimer = { deadline: this.now() + Math.max(0, delayMs), callback, real: undefined };
    this.pending.add(timer);
    this.arm(timer);
    return {
      cancel: () => {
        timer.real?.cancel();
        this.pending.delete(timer);
      },
    };
  }

  /** Time leaps forward by `ms` (0 < ms ≤ CLOCK_JUMP_MS_MAX); timers it passes fire at once. */
  jump(ms: number): void {
    if (!(ms > 0 && ms <= CLOCK_JUMP_MS_MAX)) throw new RangeError(`a clock jump is 0 < ms ≤ ${CLOCK_JUMP_MS_MAX}; got ${ms}`);
    this.reanchor();
    this.anchorFault += ms;
    this.rearmAll();
  }

  /** Time runs at `rate` × real time from now on (CLOCK_RATE_MIN ≤ rate ≤ CLOCK_RATE_MAX; 1 is normal). */
  setRate(rate: number): void {
    if (!(rate >= CLOCK_RATE_MIN && rate <= CLOCK_RATE_MAX)) throw new RangeError(`a clock rate is ${CLOCK_RATE_MIN}..${CLOCK_RATE_MAX}; got ${rate}`);
    this.reanchor();
    this.rateValue = rate;
    this.rearmAll();
  }

  /** Jumps `jumpMs` forward every `periodMs` of real time until `reset`. */
  startStrobe(periodMs: number, jumpMs: number): void {
    if (!(periodMs >= STROBE_PERIOD_MS_MIN)) throw new RangeError(`a strobe period is at least ${STROBE_PERIOD_MS_MIN} ms; got ${periodMs}`);
    this.stopStrobe();
    const step = (): void => {
      this.jump(jumpMs);
      this.strobe = this.base.setTimer(periodMs, step);
    };
    this.jump(jumpMs); // validates jumpMs before the strobe is armed
    this.strobe = this.base.setTimer(periodMs, step);
  }

  /** Normal rate, no strobe. Jumps already made stay made (time is monotonic). */
  reset(): void {
    this.stopStrobe();
    this.setRate(1);
  }

  private stopStrobe(): void {
    this.strobe?.cancel();
    this.strobe = undefined;
  }

  private reanchor(): void {
    const real = this.base.now();
    this.anchorFault = this.anchorFault + (real - this.anchorReal) * this.rateValue;
    this.anchorReal = real;
  }

  private rearmAll(): void {
    for (const timer of this.pending) {
      timer.real?.cancel();
      this.arm(timer);
    }
  }

  private arm(timer: PendingTimer): void {
    const realDelay = Math.max(0, (timer.deadline - this.now()) / this.rateValue);
    timer.real = this.base.setTimer(realDelay, () => {
      if (!this.pending.delete(timer)) return;
      timer.callback();
    });
  }
}

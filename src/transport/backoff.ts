/**
 * Reconnect delays: exponential with "equal jitter". Attempt n (from 0) waits
 * a uniformly random time in [base/2, base] where base = min(maxMs, initialMs · 2^n),
 * so peers that lost a connection together do not redial in lockstep, and no
 * delay ever exceeds `maxMs`. `reset()` after a successful handshake.
 */
import { assert } from '../util/assert.js';
import type { Random } from '../util/random.js';

export interface BackoffOptions {
  /** Base of the first retry, ms (> 0). */
  readonly initialMs: number;
  /** Largest delay, ms (≥ initialMs). */
  readonly maxMs: number;
}

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly random: Random,
    private readonly options: BackoffOptions,
  ) {
    assert(options.initialMs > 0 && options.maxMs >= options.initialMs, 'backoff bounds', options);
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.attempt;
  }

  /** The delay before the next attempt, in ms; each call counts one more failure. */
  nextDelayMs(): number {
    // 2^30 already exceeds any sane maxMs; capping the exponent keeps the arithmetic finite.
    const base = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const half = base / 2;
    return Math.round(half + this.random.next() * half);
  }

  reset(): void {
    this.attempt = 0;
  }
}

/**
 * The time seam. Core logic takes a `Clock` and never calls Date.now() or
 * setTimeout directly, so the simulator can drive it with virtual time.
 */
export interface Clock {
  /** Milliseconds since an arbitrary fixed origin; monotonic, never goes backwards. */
  now(): number;
  /** Runs `callback` once after `delayMs`. The returned handle cancels it. */
  setTimer(delayMs: number, callback: () => void): TimerHandle;
}

export interface TimerHandle {
  cancel(): void;
}

/** The real clock: `performance.now()` and Node timers. Timers are unref'd so they never keep a process alive. */
export class SystemClock implements Clock {
  now(): number {
    return performance.now();
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer = setTimeout(callback, delayMs);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  }
}

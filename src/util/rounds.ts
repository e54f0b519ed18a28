/**
 * Background rounds on the Clock: `round` runs every `intervalMs` after the
 * previous one finished (rounds never overlap); a failed round is logged and
 * the next one runs on time. `stop` cancels the pending timer and no round
 * starts after it (one already running finishes).
 *
 *   const rounds = new Rounds(clock, 500, () => handoff.round(), logger, 'hinted handoff round failed');
 *   rounds.start(); ...; rounds.stop();
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from './clock.js';

export class Rounds {
  private timer: TimerHandle | undefined;
  private stopped = false;

  /** `intervalMs` ≤ 0: `start` does nothing. */
  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly round: () => Promise<unknown>,
    private readonly logger: Logger,
    private readonly failure: string,
  ) {}

  get isStopped(): boolean {
    return this.stopped;
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    const next = (): void => {
      if (this.stopped) return;
      this.timer = this.clock.setTimer(this.intervalMs, () => {
        this.round().then(next, (error: unknown) => {
          this.logger.warn({ err: error }, this.failure);
          next();
        });
      });
    };
    next();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
}

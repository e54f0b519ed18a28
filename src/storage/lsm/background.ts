/**
 * When background work runs: two promise-driven loops, never a timer in the
 * normal course. The flush loop runs while frozen memtables wait; the
 * compaction loop while the tree is over a target. They run concurrently (a
 * long compaction never holds up a flush, as LevelDB interleaves memtable
 * compactions into its compaction work), each one job at a time; the engine
 * serializes what they install (VersionSet.logAndApply).
 *
 * After a transient failure (a full disk) both loops pause and one retry is
 * scheduled on the clock, waiting BACKGROUND_RETRY_FIRST_MS and doubling per
 * failure up to BACKGROUND_RETRY_MAX_MS: the bound on how often a full disk is
 * tried. Any success resets the wait.
 */
import type { Clock, TimerHandle } from '../../util/clock.js';

/** First wait before retrying background work after a transient error. */
export const BACKGROUND_RETRY_FIRST_MS = 100;
/** Longest wait between background retries. */
export const BACKGROUND_RETRY_MAX_MS = 5000;

/** What the scheduler drives; the engine implements it. */
export interface BackgroundWork {
  /** A frozen memtable waits for its flush. */
  flushDue(): boolean;
  /** Flushes the oldest frozen memtable. */
  flushOne(): Promise<void>;
  /** The tree is over a target (no side effects). */
  compactionDue(): boolean;
  /** Runs the most urgent compaction; false when there was none after all. */
  compactOne(): Promise<boolean>;
  /** Whether background work may run at all now (not closing, writes not stopped). */
  mayRun(): boolean;
  /** A job succeeded: clears a transient degradation. */
  succeeded(): void;
  /** A job failed: 'retry' when transient (degrade, try again later), 'stop' when writes are now refused. */
  failed(error: unknown): 'retry' | 'stop';
}

export class BackgroundScheduler {
  private flushing: Promise<void> | undefined;
  private compacting: Promise<void> | undefined;
  private retry: TimerHandle | undefined;
  private retryDelayMs = BACKGROUND_RETRY_FIRST_MS;
  private progressWaiters: Array<() => void> = [];

  constructor(
    private readonly work: BackgroundWork,
    private readonly clock: Clock,
  ) {}

  /** A compaction job is running (a flush must then go to level 0: see CompactionPicker.levelForFlush). */
  get compactionRunning(): boolean {
    return this.compacting !== undefined;
  }

  /** Waiting out a transient failure: nothing runs until the retry fires. */
  get retryPending(): boolean {
    return this.retry !== undefined;
  }

  /** Starts whichever loop has work and is not running. Cheap; call it whenever work may have appeared. */
  schedule(): void {
    if (this.retry !== undefined || !this.work.mayRun()) return;
    if (this.flushing === undefined && this.work.flushDue()) this.flushing = this.loop('flush');
    if (this.compacting === undefined && this.work.compactionDue()) this.compacting = this.loop('compact');
  }

  /** Resolves at the next job's end (or at once when nothing runs), for a writer waiting out a stall. */
  waitForProgress(): Promise<void> {
    this.schedule();
    if (this.flushing === undefined && this.compacting === undefined) return Promise.resolve();
    return new Promise((resolve) => this.progressWaiters.push(resolve));
  }

  /** Resolves when neither loop runs (a pending retry does not count). */
  async waitForIdle(): Promise<void> {
    while (this.flushing !== undefined || this.compacting !== undefined) await Promise.all([this.flushing, this.compacting]);
  }

  /** Cancels a pending retry; the caller then waits for idle. */
  cancelRetry(): void {
    this.retry?.cancel();
    this.retry = undefined;
  }

  /** Wakes writers waiting for progress (a failure stopped writes: they must see it). */
  notifyProgress(): void {
    const waiters = this.progressWaiters;
    this.progressWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private async loop(kind: 'flush' | 'compact'): Promise<void> {
    let jobs = 0;
    try {
      while (this.work.mayRun() && this.retry === undefined) {
        if (kind === 'flush') {
          if (!this.work.flushDue()) break;
          await this.work.flushOne();
        } else if (!(await this.work.compactOne())) {
          break;
        }
        jobs++;
        this.work.succeeded();
        this.retryDelayMs = BACKGROUND_RETRY_FIRST_MS;
        this.notifyProgress();
        // A flush may make a compaction due.
        this.schedule();
      }
    } catch (error) {
      if (this.work.failed(error) === 'retry') this.scheduleRetry();
    } finally {
      if (kind === 'flush') this.flushing = undefined;
      else this.compacting = undefined;
      this.notifyProgress();
      // Work that appeared while this loop was finishing (the other loop's schedule() saw it running).
      if (jobs > 0) this.schedule();
    }
  }

  private scheduleRetry(): void {
    if (this.retry !== undefined) return;
    const delayMs = this.retryDelayMs;
    this.retryDelayMs = Math.min(BACKGROUND_RETRY_MAX_MS, delayMs * 2);
    this.retry = this.clock.setTimer(delayMs, () => {
      this.retry = undefined;
      this.schedule();
    });
  }
}

/**
 * The driver's writes to the log store, one at a time and in order, with the
 * leader's asynchronous appends (Raft dissertation §10.2.1; etcd raft's async
 * storage writes) queued behind the write in flight:
 *
 *   writer.append(entries, hardState);   // a persistAsync Ready: returns at once; onDurable(index, term) later
 *   writer.whenIdle(() => ...);          // a synchronous Ready waits for every write before its own
 *   writer.save(update, done);           // that Ready's write (the writer is idle)
 *
 * Appends that arrive while a write is in flight are merged into ONE queued
 * write (entries concatenated, the newest hard state), so a slow fsync serves
 * every Ready that came during it: one fsync per burst, not per Ready. The
 * queue holds at most what the core lets a leader have uncommitted
 * (`uncommittedEntriesMax` / `uncommittedBytesMax`), so it is bounded.
 *
 * `RaftLogStore` allows one save at a time; this class is what guarantees it.
 * A failed write is reported through `onFailed` (the driver stops); nothing
 * more is written after it.
 */
import { assert } from '../util/assert.js';
import type { Clock } from '../util/clock.js';
import type { LogUpdate, RaftLogStore } from './storage.js';
import type { Entry, HardState } from './types.js';

export interface LogWriterEvents {
  /** The entries up to `index` (term `term`) of an `append` are durable. Called in order. */
  readonly onDurable: (index: number, term: number) => void;
  /** A write failed: what is durable is unknown. */
  readonly onFailed: (error: Error) => void;
  /** Latency of each completed write, in the clock's milliseconds. */
  readonly onSaved: (latencyMs: number) => void;
}

interface QueuedAppend {
  entries: Entry[];
  hardState: HardState | null;
}

export class LogWriter {
  private inFlight = false;
  private queued: QueuedAppend | null = null;
  private idleWaiters: (() => void)[] = [];
  private failed = false;

  constructor(
    private readonly store: RaftLogStore,
    private readonly clock: Clock,
    private readonly events: LogWriterEvents,
  ) {}

  /** No write in flight or queued. */
  get idle(): boolean {
    return !this.inFlight && this.queued === null;
  }

  /**
   * Queues the write of `entries` (contiguous after whatever is queued) and
   * `hardState`; it starts at once when nothing is in flight. Completion is
   * reported through `onDurable` with the last entry.
   */
  append(entries: readonly Entry[], hardState: HardState | null): void {
    assert(entries.length > 0, 'an asynchronous append without entries');
    if (this.queued === null) {
      this.queued = { entries: [...entries], hardState };
    } else {
      const last = this.queued.entries[this.queued.entries.length - 1]!;
      assert(entries[0]!.index === last.index + 1, 'queued appends are not contiguous', last.index, entries[0]!.index);
      this.queued.entries.push(...entries);
      if (hardState !== null) this.queued.hardState = hardState;
    }
    if (!this.inFlight) this.startQueued();
  }

  /** A synchronous write; only when `idle`. `done` once durable (or failed). */
  save(update: LogUpdate, done: (error: Error | null) => void): void {
    assert(this.idle, 'a synchronous save while log writes are in flight');
    this.write(update, done);
  }

  /** Runs `then` once no write is in flight or queued (at once when idle already). Never after a failure. */
  whenIdle(then: () => void): void {
    if (this.idle) return then();
    this.idleWaiters.push(then);
  }

  private startQueued(): void {
    const queued = this.queued!;
    this.queued = null;
    const last = queued.entries[queued.entries.length - 1]!;
    this.write({ snapshot: null, entries: queued.entries, hardState: queued.hardState }, (error) => {
      if (error !== null) return;
      this.events.onDurable(last.index, last.term);
    });
  }

  private write(update: LogUpdate, done: (error: Error | null) => void): void {
    this.inFlight = true;
    const startedMs = this.clock.now();
    this.store.save(update, (error) => {
      this.inFlight = false;
      if (this.failed) return;
      if (error !== null) {
        this.failed = true;
        this.queued = null;
        this.idleWaiters = [];
        done(error);
        this.events.onFailed(error);
        return;
      }
      this.events.onSaved(this.clock.now() - startedMs);
      done(null);
      // `done` may have started the next write already (an append from the Ready it let finish).
      if (this.inFlight) return;
      if (this.queued !== null) return this.startQueued();
      while (this.idle && this.idleWaiters.length > 0) this.idleWaiters.shift()!();
    });
  }
}

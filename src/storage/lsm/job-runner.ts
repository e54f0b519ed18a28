/**
 * Where background jobs (job.ts) run: one code path, two places.
 *
 *   - `InlineJobRunner`: on the engine's own thread, through the engine's
 *     Vfs. Used with MemVfs, so crash and I/O-error sweeps see every operation
 *     of flushes and compactions.
 *   - `WorkerJobRunner`: in a worker thread that opens its own NodeVfs on the
 *     same paths (background-worker.ts). Used on the real disk: merging,
 *     building blocks, Bloom filters and checksums then cost the event loop
 *     nothing, as LevelDB's compaction thread costs its callers nothing. The
 *     worker asks the engine for each new file number (one message round trip
 *     per table written) and returns the tables' metadata; the engine opens
 *     and installs them.
 *
 * A runner runs one job at a time (the engine never gives it two at once);
 * the engine keeps one runner for flushes and one for compactions, so a long
 * compaction never holds up a flush.
 */
import { Worker } from 'node:worker_threads';
import { type ErrorCode, ImpulseError } from '../../errors.js';
import { AssertionError } from '../../util/assert.js';
import { errnoError, errorCodeOf } from '../../vfs/vfs.js';
import type { JobEnvironment } from './compaction.js';
import { type BackgroundJob, metaAsBuffers, runJob } from './job.js';
import type { TableMeta } from './manifest.js';

export interface JobRunner {
  /** Runs `job`, resolving with the tables it wrote; they are not listed anywhere yet. Never called again before it settles. */
  run(job: BackgroundJob): Promise<TableMeta[]>;
  /**
   * A job runs on another thread and its messages reach the engine only when
   * the event loop turns: the engine's write path, which with sync off runs
   * on microtasks alone, then yields now and then (see LsmEngine._write).
   */
  readonly awaitsMessages: boolean;
  /** Stops the runner (after the engine waited for its job). Idempotent. */
  close(): Promise<void>;
}

export class InlineJobRunner implements JobRunner {
  readonly awaitsMessages = false;

  constructor(private readonly env: JobEnvironment) {}

  run(job: BackgroundJob): Promise<TableMeta[]> {
    return runJob(this.env, job);
  }

  async close(): Promise<void> {}
}

/** Resolves after the event loop has run once (I/O callbacks, worker messages): a yield, not a delay. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** What crosses from the worker when a job fails: enough to rebuild an error the engine can classify (health.ts). */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly impulseCode?: ErrorCode;
  readonly errno?: string;
}

export function serializeError(error: unknown): SerializedError {
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  const errno = errorCodeOf(error);
  return { name, message, ...(error instanceof ImpulseError ? { impulseCode: error.code } : {}), ...(errno === undefined ? {} : { errno }) };
}

export function deserializeError(error: SerializedError): Error {
  if (error.name === 'AssertionError') return new AssertionError(`${error.message} (in the background worker)`);
  const cause = error.errno === undefined ? undefined : errnoError(error.errno, error.message);
  if (error.impulseCode !== undefined) return new ImpulseError(error.impulseCode, error.message, cause === undefined ? undefined : { cause });
  return new Error(error.message, cause === undefined ? undefined : { cause });
}

/** Messages from the worker. */
export type WorkerMessage =
  | { readonly type: 'file-number-request'; readonly request: number }
  | { readonly type: 'done'; readonly id: number; readonly tables: readonly TableMeta[] }
  | { readonly type: 'failed'; readonly id: number; readonly error: SerializedError };

/**
 * Messages to the worker. A job comes with the file numbers it will probably
 * need (one per table it may write), so it rarely has to ask for more.
 */
export type MainMessage =
  | { readonly type: 'job'; readonly id: number; readonly job: BackgroundJob; readonly fileNumbers: readonly number[] }
  | { readonly type: 'file-number'; readonly request: number; readonly fileNumber: number };

/** What the worker is started with. */
export interface WorkerSetup {
  readonly dir: string;
  readonly tuning: JobEnvironment['tuning'];
}

export class WorkerJobRunner implements JobRunner {
  private worker: Worker | undefined;
  private nextId = 1;
  private pending: { readonly id: number; resolve(tables: TableMeta[]): void; reject(error: unknown): void } | undefined;

  constructor(
    private readonly setup: WorkerSetup,
    private readonly allocateFileNumber: () => number,
  ) {}

  get awaitsMessages(): boolean {
    return this.pending !== undefined;
  }

  run(job: BackgroundJob): Promise<TableMeta[]> {
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    worker.ref(); // a job in flight keeps the process alive; an idle worker does not
    // Numbers for the tables it will probably write: a flush writes one, a compaction about its input size's worth.
    const inputBytes = job.kind === 'flush' ? 0 : [...job.inputs, ...job.overlapping].reduce((sum, table) => sum + table.sizeBytes, 0);
    const expectedTables = job.kind === 'flush' ? 1 : Math.ceil(inputBytes / this.setup.tuning.tableTargetBytes) + 1;
    const fileNumbers = Array.from({ length: expectedTables }, () => this.allocateFileNumber());
    return new Promise<TableMeta[]>((resolve, reject) => {
      this.pending = { id, resolve, reject };
      // The memtable's entries move to the worker without a copy.
      const message: MainMessage = { type: 'job', id, job, fileNumbers };
      worker.postMessage(message, job.kind === 'flush' ? [job.entries.buffer as ArrayBuffer] : []);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  private start(): Worker {
    const worker = new Worker(new URL('./background-worker.js', import.meta.url), { workerData: this.setup });
    worker.on('message', (message: WorkerMessage) => this.onMessage(worker, message));
    worker.on('error', (error: Error) => this.settle(undefined, new AssertionError(`the lsm background worker crashed: ${error.message}`)));
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined;
      this.settle(undefined, new AssertionError(`the lsm background worker exited (code ${code}) with a job in flight`));
    });
    worker.unref();
    return worker;
  }

  private onMessage(worker: Worker, message: WorkerMessage): void {
    if (message.type === 'file-number-request') {
      const reply: MainMessage = { type: 'file-number', request: message.request, fileNumber: this.allocateFileNumber() };
      worker.postMessage(reply);
    } else if (message.type === 'done') {
      this.settle(message.id, undefined, message.tables.map(metaAsBuffers));
    } else {
      this.settle(message.id, deserializeError(message.error));
    }
  }

  /** Settles the job in flight (`id` undefined: whichever it is) with `error` or `tables`. */
  private settle(id: number | undefined, error: unknown, tables: TableMeta[] = []): void {
    const pending = this.pending;
    if (pending === undefined || (id !== undefined && pending.id !== id)) return;
    this.pending = undefined;
    this.worker?.unref();
    if (error !== undefined) pending.reject(error);
    else pending.resolve(tables);
  }
}

/**
 * `FaultVfs`: wraps ANY `Vfs` (the real disk's `NodeVfs`, a `MemVfs`, another
 * wrapper) and injects faults into it with the policies of fault-policy.ts,
 * as pebble's errorfs wraps any file system. Real-disk tests and chaos runs
 * use it to make fsync fail, fill the disk or slow it down on one node.
 *
 * How to use:
 *   const vfs = new FaultVfs(new NodeVfs(), [onlyOperations(['file.sync'], withProbability(0.01, random))]);
 *   vfs.inject(always(delay(5)));        // and a slow disk
 *   vfs.name;                            // "fault(EIO with p=0.01 on file.sync, delay 5ms on every op) over node-fs"
 *   // or from a flag string: faultVfsFromSpec(new NodeVfs(), 'fsync-error@p=0.01,latency=5ms', { seed }) (fault-spec.ts)
 *
 * Semantics: every call of a `Vfs` or `VfsFile` method is one operation,
 * counted and numbered when it is CALLED (so a deterministic caller gets the
 * same numbering each run). An operation first waits its injected delay, then
 * either fails with the injected error WITHOUT reaching the wrapped vfs (no
 * effect), or is passed through. After a 'crash' action every operation
 * rejects with `CrashError` and nothing reaches the wrapped vfs: a disk that
 * vanished (on the real disk the page cache survives, so this is not a power
 * loss; use MemVfs for that). Delays of async operations sleep on the given
 * `Clock` (virtual time in a simulator); the synchronous `readSync`/`writeSync`
 * block the thread for real time, as a slow disk would block them. The file
 * handles of a FaultVfs have `readSync`/`writeSync` exactly when the wrapped
 * ones do.
 *
 * Unlike MemVfs, an injected fsync failure does not drop the wrapped file's
 * unsynced writes (the kernel's "fsyncgate" behaviour): a wrapper cannot. Use
 * MemVfs's `syncFailureDropsWrites` to test that.
 */
import type { Clock } from '../../src/util/clock.js';
import type { Vfs, VfsFile, VfsOpenOptions } from '../../src/vfs/vfs.js';
import { FaultInjectingVfs, FaultInjector, type FaultPolicy, type VfsOperation } from './fault-policy.js';

export interface FaultVfsOptions {
  /**
   * Where async delays sleep (e.g. a simulator's virtual clock). Default: a
   * real timer that keeps the process alive while an operation waits (the
   * unref'd `SystemClock` would let a script exit under a delayed fsync).
   */
  readonly clock?: Clock;
  /** Keep a log of every operation in `operations` (memory grows with the run). Default false. */
  readonly recordOperations?: boolean;
}

/** What a FaultVfs did, for tests and for a chaos run's report. */
export interface FaultVfsStats {
  readonly operations: number;
  /** Operations refused by an injected error or crash. */
  readonly injectedFailures: number;
  readonly delayedOperations: number;
  readonly injectedDelayMs: number;
}

export class FaultVfs extends FaultInjectingVfs implements Vfs {
  private readonly clock: Clock | undefined;

  constructor(
    /** The wrapped vfs; operations that are not refused reach it unchanged. */
    readonly inner: Vfs,
    policies: readonly FaultPolicy[] = [],
    options: FaultVfsOptions = {},
  ) {
    super(new FaultInjector(options.recordOperations ?? false));
    this.clock = options.clock;
    for (const policy of policies) this.faults.add(policy);
  }

  /** "fault(<policies>) over <inner>", e.g. "fault(EIO with p=0.01 on file.sync) over node-fs". */
  get name(): string {
    return `fault(${this.faults.description.join(', ')}) over ${this.inner.name}`;
  }

  get stats(): FaultVfsStats {
    const { ioCount, firedFaultCount, delayedOperations, injectedDelayMs } = this.faults;
    return { operations: ioCount, injectedFailures: firedFaultCount, delayedOperations, injectedDelayMs };
  }

  /** Adds a policy after the existing ones. */
  inject(policy: FaultPolicy): this {
    this.faults.add(policy);
    return this;
  }

  async open(path: string, options?: VfsOpenOptions): Promise<VfsFile> {
    await this.gate('open', path);
    return new FaultFile(this, await this.inner.open(path, options));
  }

  async readFile(path: string): Promise<Buffer> {
    await this.gate('readFile', path);
    return this.inner.readFile(path);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.gate('rename', `${from} -> ${to}`);
    return this.inner.rename(from, to);
  }

  async unlink(path: string): Promise<void> {
    await this.gate('unlink', path);
    return this.inner.unlink(path);
  }

  async list(dir: string): Promise<string[]> {
    await this.gate('list', dir);
    return this.inner.list(dir);
  }

  async mkdir(dir: string): Promise<void> {
    await this.gate('mkdir', dir);
    return this.inner.mkdir(dir);
  }

  async syncDir(dir: string): Promise<void> {
    await this.gate('syncDir', dir);
    return this.inner.syncDir(dir);
  }

  async exists(path: string): Promise<boolean> {
    await this.gate('exists', path);
    return this.inner.exists(path);
  }

  async size(path: string): Promise<number> {
    await this.gate('size', path);
    return this.inner.size(path);
  }

  /**
   * Counts `operation` (synchronously, at the call) and applies the policies:
   * waits the injected delay on the clock, then rejects with the injected
   * failure, if any. For FaultFile too.
   */
  gate(operation: VfsOperation, path: string): Promise<void> {
    const { delayMs, failure } = this.faults.next(operation, path);
    if (delayMs === 0) return failure === undefined ? Promise.resolve() : Promise.reject(failure);
    return new Promise((resolve, reject) => {
      const done = (): void => (failure === undefined ? resolve() : reject(failure));
      if (this.clock === undefined) setTimeout(done, delayMs);
      else this.clock.setTimer(delayMs, done);
    });
  }

  /** `gate` for synchronous calls: blocks the thread for the injected delay, then throws the failure, if any. */
  gateSync(operation: VfsOperation, path: string): void {
    const { delayMs, failure } = this.faults.next(operation, path);
    if (delayMs > 0) blockFor(delayMs);
    if (failure !== undefined) throw failure;
  }
}

/** A file of a FaultVfs: every call goes through the vfs's gate first. */
class FaultFile implements VfsFile {
  readonly path: string;
  readonly readSync?: (position: number, length: number) => Buffer;
  readonly writeSync?: (position: number, data: Uint8Array) => void;

  constructor(
    private readonly vfs: FaultVfs,
    private readonly inner: VfsFile,
  ) {
    this.path = inner.path;
    // Present exactly when the wrapped file has them: callers test for them to choose sync I/O.
    const { readSync, writeSync } = inner;
    if (readSync !== undefined) {
      this.readSync = (position, length) => {
        vfs.gateSync('file.read', this.path);
        return readSync.call(inner, position, length);
      };
    }
    if (writeSync !== undefined) {
      this.writeSync = (position, data) => {
        vfs.gateSync('file.write', this.path);
        writeSync.call(inner, position, data);
      };
    }
  }

  async read(position: number, length: number): Promise<Buffer> {
    await this.vfs.gate('file.read', this.path);
    return this.inner.read(position, length);
  }

  async write(position: number, data: Uint8Array): Promise<void> {
    await this.vfs.gate('file.write', this.path);
    return this.inner.write(position, data);
  }

  async size(): Promise<number> {
    await this.vfs.gate('file.size', this.path);
    return this.inner.size();
  }

  async truncate(length: number): Promise<void> {
    await this.vfs.gate('file.truncate', this.path);
    return this.inner.truncate(length);
  }

  async sync(): Promise<void> {
    await this.vfs.gate('file.sync', this.path);
    return this.inner.sync();
  }

  async close(): Promise<void> {
    await this.vfs.gate('file.close', this.path);
    return this.inner.close();
  }
}

/** Blocks the calling thread for `delayMs` of real time (a slow synchronous system call). */
function blockFor(delayMs: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delayMs);
}

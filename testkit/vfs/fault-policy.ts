/**
 * Fault policies for any `Vfs` (pebble errorfs style) and the injector that
 * applies them. `MemVfs` (crash model, simulated disk) and `FaultVfs` (a
 * wrapper around any Vfs, the real disk included) share both, so a policy
 * means the same thing on either.
 *
 * How to use:
 *   vfs.inject(onIndex(12));                                              // op 12 fails with EIO
 *   vfs.inject(onlyOperations(['file.sync'], withProbability(0.01, random))); // 1% of fsyncs fail
 *   vfs.inject(startingAt(500, always({ errno: 'ENOSPC' })));             // the disk fills up at op 500
 *   faultVfs.inject(always(delay(5)));                                    // a slow disk (FaultVfs only)
 *
 * Every call of a `Vfs` or `VfsFile` method is ONE operation, numbered from 0
 * in call order (readSync/writeSync count as file.read/file.write). For each
 * operation the injector asks every policy in `inject` order: delays add up
 * and do not stop the asking; the first policy that answers an error or a
 * crash decides, and later policies are not asked (so their random draws
 * depend on the earlier ones; all of it is deterministic for a deterministic
 * caller and seeded Randoms).
 */
import { assert } from '../../src/util/assert.js';
import type { Random } from '../../src/util/random.js';
import { errnoError, vfsError } from '../../src/vfs/vfs.js';

/** The operations that are counted; file methods are prefixed with `file.`. */
export type VfsOperation =
  | 'open'
  | 'readFile'
  | 'rename'
  | 'unlink'
  | 'list'
  | 'mkdir'
  | 'syncDir'
  | 'exists'
  | 'size'
  | 'file.read'
  | 'file.write'
  | 'file.size'
  | 'file.truncate'
  | 'file.sync'
  | 'file.close';

export const VFS_OPERATIONS: readonly VfsOperation[] = [
  'open',
  'readFile',
  'rename',
  'unlink',
  'list',
  'mkdir',
  'syncDir',
  'exists',
  'size',
  'file.read',
  'file.write',
  'file.size',
  'file.truncate',
  'file.sync',
  'file.close',
];

/** One counted I/O operation. */
export interface IoOperation {
  /** 0-based position in the vfs's operation sequence. */
  readonly index: number;
  readonly operation: VfsOperation;
  /** The path operated on (for rename: "from -> to"). */
  readonly path: string;
}

/**
 * What a policy does to an operation: 'error' fails it with EIO; `{errno}`
 * fails it with another errno (e.g. 'ENOSPC', 'EMFILE'); 'crash' fails it and
 * every later operation with `CrashError`; `{delayMs}` lets it proceed after
 * that many milliseconds (FaultVfs only: MemVfs applies an operation when it
 * is called and cannot delay it). A failed operation has no effect.
 */
export type FaultAction = 'error' | 'crash' | { readonly errno: string } | { readonly delayMs: number };

/** A composable fault policy: `decide` is called once per operation, in order. `name` says what it does. */
export interface FaultPolicy {
  readonly name: string;
  decide(operation: IoOperation): FaultAction | undefined;
}

/** A latency of `delayMs` milliseconds (>= 0, finite). */
export function delay(delayMs: number): FaultAction {
  assert(Number.isFinite(delayMs) && delayMs >= 0, 'delay: milliseconds must be finite and >= 0', delayMs);
  return { delayMs };
}

/** Does `action` to every operation. */
export function always(action: FaultAction): FaultPolicy {
  return { name: `${actionName(action)} on every op`, decide: () => action };
}

/** Does `action` to exactly the operation with index `index`. */
export function onIndex(index: number, action: FaultAction = 'error'): FaultPolicy {
  return { name: `${actionName(action)} at op ${index}`, decide: (op) => (op.index === index ? action : undefined) };
}

/** Does `action` to every operation from index `index` on (a disk that died). */
export function fromIndex(index: number, action: FaultAction = 'error'): FaultPolicy {
  return { name: `${actionName(action)} from op ${index} on`, decide: (op) => (op.index >= index ? action : undefined) };
}

/** Does `action` to each operation independently with probability `probability` (0..1), drawn from `random`. */
export function withProbability(probability: number, random: Random, action: FaultAction = 'error'): FaultPolicy {
  assert(probability >= 0 && probability <= 1, 'withProbability: probability must be in [0, 1]', probability);
  return { name: `${actionName(action)} with p=${probability}`, decide: () => (random.chance(probability) ? action : undefined) };
}

/** Applies `policy` only to the listed operations (indexes stay global); others pass untouched and are not shown to it. */
export function onlyOperations(operations: readonly VfsOperation[], policy: FaultPolicy): FaultPolicy {
  const allowed = new Set(operations);
  return { name: `${policy.name} on ${operations.join('/')}`, decide: (op) => (allowed.has(op.operation) ? policy.decide(op) : undefined) };
}

/** Applies `policy` only from operation `index` on; earlier operations are not shown to it. */
export function startingAt(index: number, policy: FaultPolicy): FaultPolicy {
  return { name: `${policy.name} from op ${index} on`, decide: (op) => (op.index >= index ? policy.decide(op) : undefined) };
}

function actionName(action: FaultAction): string {
  if (action === 'error') return 'EIO';
  if (action === 'crash') return 'crash';
  return 'errno' in action ? action.errno : `delay ${action.delayMs}ms`;
}

/**
 * The rejection of every operation of a crashed vfs. Not an ImpulseError on
 * purpose: engines must not treat a simulated power cut as an I/O error they
 * can handle; the crash harness expects it to escape (possibly wrapped as the
 * `cause` of another error, see `isCrashError`).
 */
export class CrashError extends Error {
  override name = 'CrashError';

  constructor(
    /** Index of the operation that was refused. */
    readonly operationIndex: number,
    /** Index of the operation at which the crash happened. */
    readonly crashIndex: number,
    operation: string,
    path: string,
  ) {
    super(`simulated crash: operation ${operationIndex} (${operation} ${path}) refused; crashed at operation ${crashIndex}`);
  }
}

/** True when `error` is a `CrashError` or carries one in its cause chain (or in an AggregateError), at most 8 levels deep. */
export function isCrashError(error: unknown, depth = 0): boolean {
  if (depth > 8 || error === null || typeof error !== 'object') return false;
  if (error instanceof CrashError) return true;
  if (error instanceof AggregateError && error.errors.some((inner) => isCrashError(inner, depth + 1))) return true;
  return isCrashError((error as { cause?: unknown }).cause, depth + 1);
}

/** An operation an injected error or crash refused. */
export type FiredFault = IoOperation & { readonly action: FaultAction };

/** What the injector decided for one operation. */
export interface FaultDecision {
  /** Milliseconds to wait before the operation proceeds or fails (0 for none). */
  readonly delayMs: number;
  /** The error the operation must fail with (CrashError or an ImpulseError IMPULSE_ERR_ENGINE_IO), or undefined to proceed. */
  readonly failure: Error | undefined;
}

/** At most this many fired faults are kept in `firedFaults` (the first ones); `firedFaultCount` counts them all. */
export const FIRED_FAULTS_KEPT_MAX = 10_000;

/**
 * Counts operations and applies fault policies: the shared engine of MemVfs
 * and FaultVfs. Call `next` once per operation, BEFORE the operation has any
 * effect, then wait `delayMs` and throw `failure` if set.
 */
export class FaultInjector {
  /** Number of operations so far; the next operation gets this index. */
  ioCount = 0;
  /** Every operation so far, when `recordOperations` was set (else empty; memory grows with the run). */
  readonly operations: IoOperation[] = [];
  /** The first `FIRED_FAULTS_KEPT_MAX` operations an injected error or crash refused (the crash appears once, at the crash point). */
  readonly firedFaults: FiredFault[] = [];
  /** All operations an injected error or crash refused. */
  firedFaultCount = 0;
  /** Operations an injected delay slowed down, and the milliseconds injected in total. */
  delayedOperations = 0;
  injectedDelayMs = 0;
  private readonly policies: FaultPolicy[] = [];
  private crashIndex: number | undefined;

  constructor(private readonly recordOperations = false) {}

  /** The policies' names, plus "crashed at op N" once crashed. */
  get description(): string[] {
    const parts = this.policies.map((policy) => policy.name);
    if (this.crashIndex !== undefined) parts.push(`crashed at op ${this.crashIndex}`);
    return parts;
  }

  get crashed(): boolean {
    return this.crashIndex !== undefined;
  }

  add(policy: FaultPolicy): void {
    this.policies.push(policy);
  }

  /** Removes every policy (a crashed injector stays crashed). */
  clear(): void {
    this.policies.length = 0;
  }

  /** Crashes now: the next operation and every later one fail with `CrashError`. */
  crash(): void {
    this.crashIndex ??= this.ioCount;
  }

  /** Counts one operation and decides what happens to it (see the class comment). */
  next(operation: VfsOperation, path: string): FaultDecision {
    const op: IoOperation = { index: this.ioCount++, operation, path };
    if (this.recordOperations) this.operations.push(op);
    if (this.crashIndex !== undefined) return { delayMs: 0, failure: new CrashError(op.index, this.crashIndex, operation, path) };
    let delayMs = 0;
    let failure: Error | undefined;
    for (const policy of this.policies) {
      const action = policy.decide(op);
      if (action === undefined) continue;
      if (typeof action === 'object' && 'delayMs' in action) {
        delayMs += action.delayMs;
        continue;
      }
      this.fired({ ...op, action });
      failure = this.failureFor(op, action);
      break;
    }
    if (delayMs > 0) {
      this.delayedOperations++;
      this.injectedDelayMs += delayMs;
    }
    return { delayMs, failure };
  }

  private fired(fault: FiredFault): void {
    this.firedFaultCount++;
    if (this.firedFaults.length < FIRED_FAULTS_KEPT_MAX) this.firedFaults.push(fault);
  }

  private failureFor(op: IoOperation, action: 'error' | 'crash' | { readonly errno: string }): Error {
    if (action === 'crash') {
      this.crashIndex = op.index;
      return new CrashError(op.index, op.index, op.operation, op.path);
    }
    const errno = action === 'error' ? 'EIO' : action.errno;
    return vfsError(op.operation, op.path, errnoError(errno, `injected I/O error at operation ${op.index}`));
  }
}

/**
 * The fault controls MemVfs and FaultVfs share, over their one FaultInjector:
 * counting, the record of refused operations, crashing, clearing.
 */
export abstract class FaultInjectingVfs {
  protected constructor(protected readonly faults: FaultInjector) {}

  /** Number of operations so far; the next operation gets this index. */
  get ioCount(): number {
    return this.faults.ioCount;
  }

  /** Every operation so far, when `recordOperations` was set (else empty). */
  get operations(): readonly IoOperation[] {
    return this.faults.operations;
  }

  /** The operations an injected error or crash refused, in order (the crash appears once, at the crash point; the first 10,000 are kept). */
  get firedFaults(): readonly FiredFault[] {
    return this.faults.firedFaults;
  }

  /** True once a crash fault fired or `crash()` was called: every operation now rejects with `CrashError`. */
  get crashed(): boolean {
    return this.faults.crashed;
  }

  /** Removes every policy (a crashed vfs stays crashed). */
  clearFaults(): void {
    this.faults.clear();
  }

  /** Crashes now: the next operation and every later one reject with `CrashError`. */
  crash(): void {
    this.faults.crash();
  }
}

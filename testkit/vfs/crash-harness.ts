/**
 * The shared crash and I/O-error harness for everything that writes through
 * the Vfs: the disk engines, and any other durable store (SQLite style: run
 * the workload once to count its I/O operations N, then crash it at EVERY
 * operation index in turn, recover, and check).
 *
 * Two layers:
 *   - `sweepCrashPoints` / `sweepIoErrors`: generic. You give a workload that
 *     records what it did into a record of your choosing, and a `verify` that
 *     opens whatever survived and checks it against the record (the Raft log
 *     store, src/raft/log-store/, records its saves and compactions).
 *   - `crashAtEveryIoPoint` / `ioErrorAtEveryPoint`: key-value, beside the
 *     storage layer in testkit/storage/kv-crash.ts. The record is a
 *     `KvHistory` of puts, deletes and atomic batches, and the check is
 *     `checkRecoveredKv`: acknowledged writes survive, nothing appears that was
 *     never written, batches are all-or-nothing.
 *
 * Example (an engine test, ~15 lines; `crashAtEveryIoPoint` and
 * `readAllEntries` come from testkit/storage/kv-crash.ts):
 *
 *   await crashAtEveryIoPoint({
 *     seed: 42,
 *     maxPoints: 150,
 *     workload: async (vfs, history) => {
 *       const engine = new LsmEngine({ dataDir: 'db', vfs });
 *       await engine.open();
 *       for (let i = 0; i < 40; i++) await history.put(engine, `k${i % 9}`, `v${i}`);
 *       await history.batch(engine, [{ type: 'put', key: 'a', value: '1' }, { type: 'del', key: 'k1' }]);
 *       await engine.close();
 *     },
 *     recover: async (vfs) => {
 *       const engine = new LsmEngine({ dataDir: 'db', vfs });
 *       await engine.open();
 *       try { await engine.checkLevels(); return await readAllEntries(engine); } finally { await engine.close(); }
 *     },
 *   });
 *
 * Determinism: the workload must do the same I/O in the same order on every
 * run (derive any randomness from `context.random`, use no real timers to
 * order I/O), otherwise crash point i of one run is not point i of another;
 * the harness detects a run that never reaches its crash point and fails it.
 *
 * Bounds: a sweep runs the workload (points + 1) times, so keep workloads to a
 * few hundred I/O operations and use `maxPoints`; set IMPULSE_CRASH_SWEEP=full
 * in the environment to test every point regardless of `stride`/`maxPoints`.
 */
import { isImpulseError } from '../../src/errors.js';
import { AssertionError } from '../../src/util/assert.js';
import { SeededRandom, type Random } from '../../src/util/random.js';
import { MemVfs, isCrashError, type IoOperation, type RecoverMode } from './mem-vfs.js';

// ---------------------------------------------------------------------------
// Generic layer
// ---------------------------------------------------------------------------

/**
 * What a sweep throws at a violation (or when the workload fails without any
 * fault): an `AssertionError` (a test failure, not an operating error) of its
 * own class, so the harness can tell its own verdicts from errors the code
 * under test throws. `failure` is set for violations found at a fault point.
 */
export class CrashHarnessFailure extends AssertionError {
  override name = 'CrashHarnessFailure';

  constructor(
    message: string,
    readonly failure?: SweepFailure,
  ) {
    super(message);
  }
}

/** Where and how one run was crashed or failed; passed to `verify` and reported in failures. */
export interface FaultPoint {
  readonly seed: number;
  /** Index of the faulted I/O operation; equals `ioOperations` for the run without a fault. */
  readonly point: number;
  /** Number of I/O operations of the fault-free run. */
  readonly ioOperations: number;
  /** The operation at `point` in the fault-free run (undefined for the fault-free point). */
  readonly operation: IoOperation | undefined;
  /** How the disk state was recovered. */
  readonly mode: RecoverMode;
  /** For I/O-error sweeps: whether the error was once or persistent. */
  readonly persistence?: 'once' | 'persistent';
  /** With `crashDuringRecovery`: the recovery's own I/O operation at which it was crashed too. */
  readonly recoveryCrashAt?: number;
  /** With `drawsPerPoint` > 1: which of the random recoveries of this point and mode (0-based). */
  readonly draw?: number;
}

/** What a workload gets besides the vfs and its record. */
export interface WorkloadContext {
  /** A Random seeded identically on every run of the sweep: use it for all workload choices. */
  readonly random: Random;
  /** The faulted operation index of this run (the fault-free count for the counting run). */
  readonly point: number;
}

export interface SweepOptions {
  /** Seed for point sampling, torn-write choices and `context.random`. Printed in every failure. */
  readonly seed: number;
  /** Test every `stride`-th operation index (default 1). */
  readonly stride?: number;
  /** At most this many fault points (sampled deterministically from the seed; first and last kept). Default unbounded. */
  readonly maxPoints?: number;
  /** Test exactly these points (e.g. to replay a failure); overrides stride and maxPoints. */
  readonly points?: readonly number[];
  /** Return failures in the summary instead of throwing at the first one. Default false. */
  readonly collectFailures?: boolean;
  /**
   * How many times each point is recovered and verified in each mode that
   * draws what survives at random ('torn', 'reorder', 'reorder-dirs'), each
   * draw with its own seeded choices; 'lose-unsynced' and 'keep-unsynced' are
   * deterministic and verified once. Cheaper than more seeds (the workload
   * does not run again) when a bug needs one rare combination of surviving
   * changes. Default 1.
   */
  readonly drawsPerPoint?: number;
}

export interface CrashSweepOptions<R> extends SweepOptions {
  /** A fresh, empty record for one run (e.g. `new KvHistory()`). */
  newRecord(): R;
  /** Runs against `vfs`, recording into `record`. A `CrashError` escaping it is the normal end of a crashed run. */
  workload(vfs: MemVfs, record: R, context: WorkloadContext): Promise<void>;
  /**
   * Opens what survived (`recovered`, a fresh MemVfs without faults) and checks
   * it against `record`. Returns a violation description, or undefined when
   * fine; a thrown error is a violation too (e.g. the engine could not open).
   */
  verify(recovered: MemVfs, record: R, point: FaultPoint): Promise<string | undefined>;
  /** Recovery modes to check at each point. Default ['lose-unsynced', 'torn']. */
  readonly modes?: readonly RecoverMode[];
  /**
   * Also crash the RECOVERY once per point and mode (at a seeded random one of
   * its I/O operations), recover from that second crash, and verify again:
   * recovery that rewrites files must be crash-safe too. Default false (it
   * roughly triples the sweep's cost).
   */
  readonly crashDuringRecovery?: boolean;
}

export interface SweepFailure extends FaultPoint {
  readonly message: string;
}

export interface SweepSummary {
  /** I/O operations of the fault-free run. */
  readonly ioOperations: number;
  /** Fault points run (including the fault-free end point for crash sweeps). */
  readonly points: number;
  readonly modes: readonly RecoverMode[];
  /** Verifications done (points × modes × draws, × persistences for error sweeps). */
  readonly checks: number;
  /** Violations found; only ever non-empty with `collectFailures` (otherwise the first one throws). */
  readonly failures: readonly SweepFailure[];
}

/**
 * Crashes `workload` at every chosen I/O operation index in turn and verifies
 * what survives, in each recovery mode. Steps:
 *   1. Run once without faults, counting the operations N (recording their
 *      names for messages); verify that end state (point N).
 *   2. For each chosen point i in [0, N): run on a fresh MemVfs with
 *      `{kind:'crash', at:i}`; the workload must end with a CrashError (possibly
 *      wrapped) or resolve after the crash; any other error is a failure, and so
 *      is a run that never reaches operation i (nondeterministic workload).
 *   3. For each mode: `vfs.recover(mode, random)` and `verify`.
 * Throws a `CrashHarnessFailure` naming seed, point, operation and mode at the first
 * violation (unless `collectFailures`).
 */
export async function sweepCrashPoints<R>(options: CrashSweepOptions<R>): Promise<SweepSummary> {
  const modes = options.modes ?? ['lose-unsynced', 'torn'];
  const { failures, fail } = failureRecorder(options.collectFailures);
  let checks = 0;

  // 1. The counting run.
  const counting = new MemVfs({ random: new SeededRandom(options.seed), recordOperations: true });
  const countingRecord = options.newRecord();
  try {
    await options.workload(counting, countingRecord, { random: new SeededRandom(options.seed), point: -1 });
  } catch (error) {
    throw new CrashHarnessFailure(`crash harness (seed ${options.seed}): the workload fails without any fault injected: ${describeError(error)}`);
  }
  const ioOperations = counting.ioCount;
  const operations = counting.operations.slice();
  const endPoint = (mode: RecoverMode): FaultPoint => ({ seed: options.seed, point: ioOperations, ioOperations, operation: undefined, mode });
  for (const mode of modes) checks += await verifyDraws(options, counting, countingRecord, endPoint(mode), fail);

  // 2-3. One crashed run per chosen point.
  const chosen = choosePoints(ioOperations, options);
  for (const point of chosen) {
    const vfs = new MemVfs({ random: new SeededRandom(mixSeed(options.seed, point)) }).inject({ kind: 'crash', at: point });
    const record = options.newRecord();
    const at = (mode: RecoverMode): FaultPoint => ({ seed: options.seed, point, ioOperations, operation: operations[point], mode });
    let escaped: unknown;
    try {
      await options.workload(vfs, record, { random: new SeededRandom(options.seed), point });
    } catch (error) {
      escaped = error;
    }
    if (escaped !== undefined && !isCrashError(escaped)) {
      fail(at(modes[0] ?? 'lose-unsynced'), `the workload failed with an error other than the crash: ${describeError(escaped)}`);
      continue;
    }
    if (!vfs.crashed) {
      fail(at(modes[0] ?? 'lose-unsynced'), `the run did only ${vfs.ioCount} I/O operations and never reached the crash point: the workload's I/O is not deterministic`);
      continue;
    }
    for (const mode of modes) checks += await verifyDraws(options, vfs, record, at(mode), fail);
  }
  return { ioOperations, points: chosen.length + 1, modes, checks, failures };
}

/** Modes whose recovery draws what survives at random (the others are deterministic). */
const RANDOM_MODES: ReadonlySet<RecoverMode> = new Set(['torn', 'reorder', 'reorder-dirs']);

/** `verifyOne` once per draw (see `SweepOptions.drawsPerPoint`); returns the number of verifications. */
async function verifyDraws<R>(
  options: CrashSweepOptions<R> | IoErrorSweepOptions<R>,
  vfs: MemVfs,
  record: R,
  point: FaultPoint,
  fail: (point: FaultPoint, message: string) => void,
): Promise<number> {
  const draws = RANDOM_MODES.has(point.mode) ? Math.max(1, Math.floor(options.drawsPerPoint ?? 1)) : 1;
  for (let draw = 0; draw < draws; draw++) await verifyOne(options, vfs, record, draws === 1 ? point : { ...point, draw }, fail);
  return draws;
}

/** The seed of one recovery: draw 0 keeps the salt of the mode alone, so it is the recovery a single-draw sweep checks. */
function recoverySeed(seed: number, point: FaultPoint, stage = ''): number {
  const draw = point.draw ? `#${point.draw}` : '';
  return mixSeed(seed, point.point, `${point.mode}${stage}${draw}`);
}

async function verifyOne<R>(
  options: CrashSweepOptions<R> | IoErrorSweepOptions<R>,
  vfs: MemVfs,
  record: R,
  point: FaultPoint,
  fail: (point: FaultPoint, message: string) => void,
): Promise<void> {
  const recovered = vfs.recover(point.mode, new SeededRandom(recoverySeed(options.seed, point)));
  let violation = await verifyCatching(options, recovered, record, point);
  if (violation !== undefined) {
    fail(point, violation);
    return;
  }
  if (!('crashDuringRecovery' in options) || !options.crashDuringRecovery || recovered.ioCount === 0) return;

  // The same surviving state again (same seed), this time crashed during recovery.
  const recoveryCrashAt = new SeededRandom(recoverySeed(options.seed, point, '/recovery')).int(recovered.ioCount);
  const again = vfs.recover(point.mode, new SeededRandom(recoverySeed(options.seed, point)));
  again.inject({ kind: 'crash', at: recoveryCrashAt });
  const crashedPoint: FaultPoint = { ...point, recoveryCrashAt };
  try {
    await options.verify(again, record, crashedPoint);
  } catch (error) {
    if (error instanceof CrashHarnessFailure) throw error;
    if (!isCrashError(error)) {
      fail(crashedPoint, `recovery failed with an error other than the crash: ${describeError(error)}`);
      return;
    }
  }
  const final = again.recover(point.mode, new SeededRandom(recoverySeed(options.seed, point, '/second')));
  violation = await verifyCatching(options, final, record, crashedPoint);
  if (violation !== undefined) fail(crashedPoint, violation);
}

/** `options.verify`, with an error it throws (other than the harness's own verdict) as the violation. */
async function verifyCatching<R>(
  options: CrashSweepOptions<R> | IoErrorSweepOptions<R>,
  recovered: MemVfs,
  record: R,
  point: FaultPoint,
): Promise<string | undefined> {
  try {
    return await options.verify(recovered, record, point);
  } catch (error) {
    if (error instanceof CrashHarnessFailure) throw error;
    return `recovery failed: ${describeError(error)}`;
  }
}

export interface IoErrorSweepOptions<R> extends SweepOptions {
  newRecord(): R;
  /**
   * Runs against a vfs where operation `point` fails with EIO (once, or from
   * there on). The error must reach the workload: either it escapes (any
   * `ImpulseError`; another error type escaping is a failure, e.g. an
   * AssertionError or TypeError on the error path), or the workload catches it
   * and tells the record (see `KvHistory.sawError`; `reachedCaller`).
   */
  workload(vfs: MemVfs, record: R, context: WorkloadContext): Promise<void>;
  /** As for crash sweeps: opens what survived and checks it; undefined when fine. */
  verify(recovered: MemVfs, record: R, point: FaultPoint): Promise<string | undefined>;
  /** True when the workload caught an error from the engine and recorded it. */
  reachedCaller(record: R): boolean;
  /** Once, persistent, or both (default both). */
  readonly persistence?: ReadonlyArray<'once' | 'persistent'>;
  /** What the engine is reopened on after the error. Default ['keep-unsynced', 'lose-unsynced'] (process restart; power loss). */
  readonly modes?: readonly RecoverMode[];
  /**
   * Run on `MemVfs({ syncFailureDropsWrites })`: a failed fsync loses that
   * file's unsynced writes for good, as on Linux, so an engine that retries
   * fsync or keeps writing after a failed one loses acknowledged data.
   * Default true.
   */
  readonly syncFailureDropsWrites?: boolean;
  /**
   * Operations whose injected error the engine may handle without telling the
   * caller (e.g. a read it retries, a failed cleanup unlink). Default: none: an
   * error on any operation must reach the caller.
   */
  mayAbsorb?(operation: IoOperation): boolean;
}

/**
 * Fails the I/O operation at every chosen index in turn (once and/or
 * persistently) and checks: the error reaches the caller (never swallowed,
 * never turned into a non-ImpulseError), and after reopening on what the disk
 * holds the engine opens, passes `verify` (acknowledged data not lost, nothing
 * invented). Throws a `CrashHarnessFailure` at the first violation unless `collectFailures`.
 */
export async function sweepIoErrors<R>(options: IoErrorSweepOptions<R>): Promise<SweepSummary> {
  const modes = options.modes ?? ['keep-unsynced', 'lose-unsynced'];
  const persistences = options.persistence ?? ['once', 'persistent'];
  const { failures, fail } = failureRecorder(options.collectFailures);
  let checks = 0;

  const counting = new MemVfs({ random: new SeededRandom(options.seed), recordOperations: true });
  try {
    await options.workload(counting, options.newRecord(), { random: new SeededRandom(options.seed), point: -1 });
  } catch (error) {
    throw new CrashHarnessFailure(`crash harness (seed ${options.seed}): the workload fails without any fault injected: ${describeError(error)}`);
  }
  const ioOperations = counting.ioCount;
  const operations = counting.operations.slice();
  const chosen = choosePoints(ioOperations, options);

  for (const point of chosen) {
    for (const persistence of persistences) {
      const vfs = new MemVfs({ random: new SeededRandom(mixSeed(options.seed, point)), syncFailureDropsWrites: options.syncFailureDropsWrites ?? true });
      vfs.inject({ kind: 'error', at: point, persistent: persistence === 'persistent' });
      const record = options.newRecord();
      const at = (mode: RecoverMode): FaultPoint => ({ seed: options.seed, point, ioOperations, operation: operations[point], mode, persistence });
      let escaped: unknown;
      let threw = false;
      try {
        await options.workload(vfs, record, { random: new SeededRandom(options.seed), point });
      } catch (error) {
        escaped = error;
        threw = true;
      }
      const first = at(modes[0] ?? 'keep-unsynced');
      if (threw && !isImpulseError(escaped)) {
        fail(first, `the injected EIO surfaced as a non-ImpulseError: ${describeError(escaped)}`);
        continue;
      }
      const fired = vfs.firedFaults[0];
      if (fired === undefined) {
        fail(first, `the run did only ${vfs.ioCount} I/O operations and never reached the faulted one: the workload's I/O is not deterministic`);
        continue;
      }
      if (!threw && !options.reachedCaller(record) && !(options.mayAbsorb?.(fired) ?? false)) {
        fail(first, `the injected EIO at operation ${fired.index} (${fired.operation} ${fired.path}) was swallowed: the workload finished and no caller saw an error`);
        continue;
      }
      for (const mode of modes) checks += await verifyDraws(options, vfs, record, at(mode), fail);
    }
  }
  return { ioOperations, points: chosen.length, modes, checks, failures };
}

/** The chosen fault points in [0, total), ascending. See `SweepOptions`. */
export function choosePoints(total: number, options: SweepOptions): number[] {
  if (options.points !== undefined) return [...new Set(options.points)].filter((p) => p >= 0 && p < total).sort((a, b) => a - b);
  const full = process.env['IMPULSE_CRASH_SWEEP'] === 'full';
  const stride = full ? 1 : Math.max(1, Math.floor(options.stride ?? 1));
  const candidates: number[] = [];
  for (let point = 0; point < total; point += stride) candidates.push(point);
  const maxPoints = full ? Infinity : options.maxPoints ?? Infinity;
  if (candidates.length <= maxPoints) return candidates;
  if (maxPoints <= 0) return [];
  // Keep the first and last candidates (opening and closing I/O are where bugs hide), sample the rest.
  const random = new SeededRandom(mixSeed(options.seed, total));
  const middle = candidates.slice(1, -1);
  for (let i = middle.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [middle[i], middle[j]] = [middle[j] as number, middle[i] as number];
  }
  const edges = maxPoints === 1 ? [candidates[0] as number] : [candidates[0] as number, candidates[candidates.length - 1] as number];
  return [...edges, ...middle.slice(0, Math.max(0, maxPoints - edges.length))].sort((a, b) => a - b);
}

function mixSeed(seed: number, point: number, salt = ''): number {
  let hash = (seed ^ Math.imul(point + 1, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < salt.length; i++) hash = Math.imul(hash ^ salt.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

function describeFailure(failure: SweepFailure): string {
  const where =
    failure.operation === undefined
      ? `after the fault-free run (${failure.ioOperations} I/O operations)`
      : `${failure.persistence === undefined ? 'crash' : `EIO (${failure.persistence})`} at I/O operation ${failure.point} of ${failure.ioOperations} (${failure.operation.operation} ${failure.operation.path})`;
  const replay = failure.operation === undefined ? '' : ` Replay: { seed: ${failure.seed}, points: [${failure.point}] }.`;
  const draw = failure.draw === undefined ? '' : ` (draw ${failure.draw})`;
  const second = failure.recoveryCrashAt === undefined ? '' : `, then crashed again at recovery I/O operation ${failure.recoveryCrashAt}`;
  return `crash harness (seed ${failure.seed}): ${where}, recovery mode '${failure.mode}'${draw}${second}: ${failure.message}.${replay}`;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}${error.stack ? `\n${error.stack.split('\n').slice(1, 6).join('\n')}` : ''}`;
  return String(error);
}

/**
 * The sweeps' failure handling: `fail` throws a `CrashHarnessFailure` describing the
 * first violation, or, with `collectFailures`, records it in `failures`.
 */
function failureRecorder(collectFailures: boolean | undefined): { failures: SweepFailure[]; fail: (point: FaultPoint, message: string) => void } {
  const failures: SweepFailure[] = [];
  const fail = (point: FaultPoint, message: string): void => {
    const failure = { ...point, message };
    if (!collectFailures) throw new CrashHarnessFailure(describeFailure(failure), failure);
    failures.push(failure);
  };
  return { failures, fail };
}


/**
 * Error classification and the engine's health state (`EngineHealth`).
 *
 * Classification (the errno comes from the Vfs error's cause):
 *
 *   | what failed                                   | errno            | caller gets                             | engine becomes |
 *   |-----------------------------------------------|------------------|-----------------------------------------|----------------|
 *   | any write, create or background job           | ENOSPC, EDQUOT   | IMPULSE_ERR_ENGINE_NO_SPACE (507)       | degraded       |
 *   | any write, create or background job           | EMFILE, ENFILE   | IMPULSE_ERR_ENGINE_TOO_MANY_FILES (503) | degraded       |
 *   | a WAL fsync                                   | any              | the error, then ENGINE_READ_ONLY (503)  | read-only      |
 *   | the manifest rename or its directory sync     | any              | (background)                            | read-only      |
 *   | any other write or background I/O error (EIO) | other            | the error, then ENGINE_READ_ONLY (503)  | read-only      |
 *   | a background job finds corruption             | —                | ENGINE_CORRUPTION, then READ_ONLY       | failed         |
 *   | a bug (AssertionError)                        | —                | the error, then READ_ONLY               | failed         |
 *
 * 'degraded' clears by itself: the next write that succeeds clears the
 * write-path degradation, the next background job that succeeds clears the
 * background one (the engine retries background work with a bounded backoff,
 * as RocksDB auto-recovers from a full disk). 'read-only' and 'failed' last
 * until the engine is reopened: after a failed fsync the page cache can no
 * longer be trusted to match the disk (fsyncgate), and a manifest whose rename
 * may or may not have reached the disk leaves two possible trees.
 */
import { type ErrorCode, ImpulseError, isImpulseError } from '../../errors.js';
import { AssertionError } from '../../util/assert.js';
import { errorCodeOf } from '../../vfs/vfs.js';
import type { EngineHealth, EngineLog } from '../engine.js';

/** errno → the catalog code of a transient resource error. Anything else is not transient. */
export const TRANSIENT_ERRNO_CODES: Readonly<Record<string, ErrorCode>> = Object.freeze({
  ENOSPC: 'IMPULSE_ERR_ENGINE_NO_SPACE',
  EDQUOT: 'IMPULSE_ERR_ENGINE_NO_SPACE',
  EMFILE: 'IMPULSE_ERR_ENGINE_TOO_MANY_FILES',
  ENFILE: 'IMPULSE_ERR_ENGINE_TOO_MANY_FILES',
});

/** The catalog code when `error` is a transient resource error (see the table above), else undefined. */
export function transientCode(error: unknown): ErrorCode | undefined {
  if (isImpulseError(error) && error.code !== 'IMPULSE_ERR_ENGINE_IO') return undefined;
  const errno = errorCodeOf(error);
  return errno === undefined ? undefined : TRANSIENT_ERRNO_CODES[errno];
}

/** True when `error` means stored data is damaged or the engine has a bug: 'failed' rather than 'read-only'. */
export function isDamageOrBug(error: unknown): boolean {
  return error instanceof AssertionError || isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION');
}

/** When `error` is a transient resource error: the error a caller gets, under its own code and naming what failed (the cause kept). Else undefined. */
export function asTransientError(error: unknown, during: string): ImpulseError | undefined {
  const code = transientCode(error);
  if (code === undefined) return undefined;
  const message = error instanceof Error ? error.message : String(error);
  return new ImpulseError(code, `lsm: ${during} failed: ${message}; the engine retries and resumes on its own`, { cause: error });
}

/** Where a transient degradation comes from; each clears separately. */
export type DegradationSource = 'writes' | 'background';

/** The engine's health: a sticky fail-stop state, or transient degradations that clear when the work succeeds again. */
export class HealthState {
  private stopped: { readonly state: 'read-only' | 'failed'; readonly refusal: ImpulseError } | undefined;
  private readonly degradations = new Map<DegradationSource, ImpulseError>();

  /** `log` hears each change of state (not each repeat of one); `fields` go with every line. */
  constructor(
    private readonly log?: EngineLog,
    private readonly fields: Record<string, unknown> = {},
  ) {}

  /** The error every write gets once the engine stopped accepting writes; undefined while it accepts them. */
  get refusal(): ImpulseError | undefined {
    return this.stopped?.refusal;
  }

  /** The transient error behind `source`'s degradation, if any. */
  degradation(source: DegradationSource): ImpulseError | undefined {
    return this.degradations.get(source);
  }

  /**
   * Stops accepting writes until reopen, because of `error` during `during`
   * (the first cause wins). Returns the refusal later writers get.
   */
  stop(error: unknown, during: string): ImpulseError {
    if (this.stopped === undefined) {
      const state = isDamageOrBug(error) ? 'failed' : 'read-only';
      const message = error instanceof Error ? error.message : String(error);
      const refusal = new ImpulseError('IMPULSE_ERR_ENGINE_READ_ONLY', `lsm: ${during} failed (${message}); writes are refused until the engine is reopened, reads are served`, { cause: error });
      this.stopped = { state, refusal };
      this.log?.warn({ ...this.fields, health: state, code: refusal.code }, refusal.message);
    }
    return this.stopped.refusal;
  }

  degrade(source: DegradationSource, error: ImpulseError): void {
    if (!this.degradations.has(source)) this.log?.warn({ ...this.fields, health: 'degraded', source, code: error.code }, error.message);
    this.degradations.set(source, error);
  }

  /** Called after every success of `source`'s work (so cheap when nothing was degraded). */
  recover(source: DegradationSource): void {
    if (this.degradations.delete(source)) this.log?.info({ ...this.fields, source }, `lsm: ${source === 'writes' ? 'writes succeed' : 'background work succeeds'} again; no longer degraded`);
  }

  /** The public health (the engine base reports 'failed' itself while not open). */
  snapshot(): EngineHealth {
    if (this.stopped !== undefined) {
      const cause = this.stopped.refusal.cause;
      return { state: this.stopped.state, reason: this.stopped.refusal.message, code: isImpulseError(cause) ? cause.code : 'IMPULSE_ERR_ENGINE_READ_ONLY' };
    }
    const degradation = this.degradations.get('writes') ?? this.degradations.get('background');
    if (degradation !== undefined) return { state: 'degraded', reason: degradation.message, code: degradation.code };
    return { state: 'ok' };
  }

  /** 0 ok, 1 degraded, 2 read-only, 3 failed: the state as a stats figure. */
  get figure(): number {
    return ['ok', 'degraded', 'read-only', 'failed'].indexOf(this.snapshot().state);
  }
}

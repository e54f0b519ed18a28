/**
 * Options of `SegmentedLogStore.open`, their defaults and their bounds.
 */
import { ImpulseError } from '../../errors.js';
import { SystemClock, type Clock } from '../../util/clock.js';
import type { ConfState } from '../types.js';
import type { LogJournal } from './journal.js';
import type { RecoveryMode } from './recovery.js';

/** Where the store reports what recovery discarded (pino's `logger.warn(details, message)` fits). */
export interface LogStoreLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

/**
 * TEST-ONLY deliberate bugs: the crash sweep must catch each of them
 * (log-store-crash.test.ts). Production code must never set them.
 */
export interface LogStoreMutations {
  /** Create a new segment without syncing the directory: after a power loss the file (and acknowledged saves in it) may be gone. */
  readonly skipSegmentDirSync?: boolean;
  /** Call `done(null)` for a save before its fsync has finished. */
  readonly acknowledgeBeforeSync?: boolean;
}

export interface LogStoreOptions {
  /**
   * A save goes to a new segment when it would take the current one past this
   * many bytes (unless the current one holds nothing but its header, so a
   * single larger save still fits somewhere). 256 B .. 1 GiB; default 64 MiB.
   */
  readonly segmentBytesMax?: number;
  /** Decoded recent entries kept in memory, in encoded bytes (one save in flight may pass it). 0 .. 4 GiB; default 8 MiB. */
  readonly cacheBytesMax?: number;
  /** What to do about damage beyond a torn tail; default 'strict' (refuse to open). See recovery.ts and the README. */
  readonly recovery?: RecoveryMode;
  /** The configuration `snapshotMeta()` reports for a NEW log (index 0); ignored once the log exists. Default: no members. */
  readonly bootstrapConfState?: ConfState;
  /** Measures save latency. Default: the system clock. */
  readonly clock?: Clock;
  /** Receives one warning per recovery that discarded anything. Default: none (the report is still in `recoveryReport` and `stats()`). */
  readonly logger?: LogStoreLogger;
  /**
   * The node's journal (journal.ts): saves into an existing segment are made
   * durable by its shared fsync instead of one of their own. It must have been
   * opened (replayed) before this store, under a root that holds this store's
   * directory, and closed after it. Default: none (every save fsyncs).
   */
  readonly journal?: LogJournal;
  /** TEST-ONLY. */
  readonly mutations?: LogStoreMutations;
}

export interface ResolvedOptions {
  readonly segmentBytesMax: number;
  readonly cacheBytesMax: number;
  readonly recovery: RecoveryMode;
  readonly bootstrapConfState: ConfState;
  readonly clock: Clock;
  readonly logger: LogStoreLogger | undefined;
  readonly journal: LogJournal | undefined;
  readonly mutations: LogStoreMutations;
}

export const SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
export const CACHE_BYTES_MAX_DEFAULT = 8 * 1024 * 1024;
const SEGMENT_BYTES_MAX_RANGE = [256, 1024 * 1024 * 1024] as const;
const CACHE_BYTES_MAX_RANGE = [0, 4 * 1024 * 1024 * 1024] as const;

/** Fills in defaults; rejects a value out of its range with IMPULSE_ERR_CONFIG_INVALID. */
export function resolveOptions(options: LogStoreOptions): ResolvedOptions {
  const recovery = options.recovery ?? 'strict';
  if (recovery !== 'strict' && recovery !== 'truncate-corrupt-tail') {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `raft log: recovery must be 'strict' or 'truncate-corrupt-tail', not ${JSON.stringify(recovery)}`);
  }
  return {
    segmentBytesMax: inRange('segmentBytesMax', options.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_BYTES_MAX_RANGE),
    cacheBytesMax: inRange('cacheBytesMax', options.cacheBytesMax ?? CACHE_BYTES_MAX_DEFAULT, CACHE_BYTES_MAX_RANGE),
    recovery,
    bootstrapConfState: options.bootstrapConfState ?? { voters: [], learners: [] },
    clock: options.clock ?? new SystemClock(),
    logger: options.logger,
    journal: options.journal,
    mutations: options.mutations ?? {},
  };
}

function inRange(name: string, value: number, [min, max]: readonly [number, number]): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `raft log: ${name} must be an integer in [${min}, ${max}], not ${value}`);
  }
  return value;
}

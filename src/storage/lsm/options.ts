/**
 * The lsm engine's options: tuning sizes with their defaults, and the
 * validation that turns a bad value into IMPULSE_ERR_CONFIG_INVALID before
 * anything is opened.
 */
import { ImpulseError } from '../../errors.js';
import type { Clock } from '../../util/clock.js';
import type { Vfs } from '../../vfs/vfs.js';
import type { EngineLog, EngineOptions } from '../engine.js';
import { WAL_RECOVERY_MODES, type WalRecoveryMode } from './wal-recovery.js';

/** Tuning options. Every size is in bytes. */
export interface LsmTuning {
  /** Active memtable budget before it is frozen and flushed. Default 8 MiB. */
  readonly memtableBytes: number;
  /** Frozen memtables waiting for flush before writes stall. Default 2. */
  readonly immutableMemtablesMax: number;
  /** Target size of one SSTable written by flush or compaction. Default 4 MiB. */
  readonly tableTargetBytes: number;
  /** Target size of one data block. Default 4 KiB. */
  readonly blockBytes: number;
  /** Keys between restart points in a block. Default 16. */
  readonly restartInterval: number;
  /** Bloom filter bits per key (0 < bits <= 64). Default 10 (about 1% false positives). */
  readonly bloomBitsPerKey: number;
  /** Block cache budget. Default 64 MiB. */
  readonly blockCacheBytes: number;
  /** Level-0 table count that starts a level-0 compaction. Default 4. */
  readonly level0CompactionTrigger: number;
  /** Level-0 table count at which writes stall until compaction catches up. Default 12. */
  readonly level0StopWritesTrigger: number;
  /** Size target of level 1; each deeper level is `levelSizeMultiplier` times larger. Default 32 MiB. */
  readonly level1TargetBytes: number;
  /** Default 10. */
  readonly levelSizeMultiplier: number;
  /** Levels including level 0. Default 7. */
  readonly levelCount: number;
}

export const DEFAULT_LSM_TUNING: LsmTuning = Object.freeze({
  memtableBytes: 8 * 1024 * 1024,
  immutableMemtablesMax: 2,
  tableTargetBytes: 4 * 1024 * 1024,
  blockBytes: 4096,
  restartInterval: 16,
  bloomBitsPerKey: 10,
  blockCacheBytes: 64 * 1024 * 1024,
  level0CompactionTrigger: 4,
  level0StopWritesTrigger: 12,
  level1TargetBytes: 32 * 1024 * 1024,
  levelSizeMultiplier: 10,
  levelCount: 7,
});

export interface LsmEngineOptions extends EngineOptions, Partial<LsmTuning> {
  /** File system. Default: the real one (NodeVfs). */
  readonly vfs?: Vfs;
  /** Time source for stall durations. Default: the system clock. */
  readonly clock?: Clock;
  /**
   * What open does with a damaged WAL (wal-recovery.ts). Default
   * 'tolerate-tail': a torn final record is discarded, any other damage
   * refuses to start. 'point-in-time' and 'skip-corrupted' are the operator's
   * explicit choices to start anyway, losing what is damaged.
   */
  readonly walRecovery?: WalRecoveryMode;
  /**
   * Where flushes and compactions run: 'worker' (two worker threads, off the
   * event loop; only with NodeVfs, since a worker opens its own NodeVfs on the
   * same paths) or 'inline' (on the engine's thread, through its Vfs).
   * Default: 'worker' with NodeVfs, 'inline' with any other Vfs.
   */
  readonly backgroundThreads?: 'worker' | 'inline';
  /** Where the engine logs what recovery found at open and each change of its health. Default: nowhere (both are in `recoveryReport`/`health()` too). */
  readonly log?: EngineLog;
  /** Deliberately broken variants, for tests that must catch them. Never set outside tests. */
  readonly mutations?: LsmMutations;
}

/**
 * Planted bugs, each switched on by a test that shows the suite catches it
 * (the lsm counterpart of `RaftMutations`).
 */
export interface LsmMutations {
  /** Rename MANIFEST.tmp over MANIFEST without syncing the directory after it (the rename may be lost while later unlinks survive). */
  readonly skipManifestDirSync?: boolean;
  /** Rename a manifest that lists new tables without first syncing the directory the tables were created in (a crash may keep the manifest and lose a table's name). */
  readonly skipTableDirSync?: boolean;
  /** WAL recovery takes any bad stretch at the end of the newest segment for a torn tail, whatever follows it (the old reader's blind spot). */
  readonly walDamageAsTornTail?: boolean;
}

/** Longest key the block search scratch space holds; the engine's key limit may not exceed it. */
export const KEY_BYTES_LIMIT = 64 * 1024;

/** `options`' tuning over the defaults, validated; throws IMPULSE_ERR_CONFIG_INVALID naming the bad option. */
export function resolveTuning(options: LsmEngineOptions, keyBytesMax: number): LsmTuning {
  const tuning: Record<string, number> = { ...DEFAULT_LSM_TUNING };
  for (const name of Object.keys(DEFAULT_LSM_TUNING)) {
    const value = (options as Record<string, unknown>)[name];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `lsm option ${name} must be a positive integer, got ${String(value)}`);
    }
    tuning[name] = value;
  }
  const t = Object.freeze(tuning as unknown as LsmTuning);
  if (t.bloomBitsPerKey > 64) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'lsm bloomBitsPerKey must be at most 64');
  if (t.levelCount < 2 || t.levelCount > 16) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'lsm levelCount must be 2..16');
  if (t.level0StopWritesTrigger < t.level0CompactionTrigger) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'lsm level0StopWritesTrigger must be >= level0CompactionTrigger');
  }
  if (keyBytesMax > KEY_BYTES_LIMIT) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the lsm engine supports keys up to ${KEY_BYTES_LIMIT} bytes`);
  }
  return t;
}

/** The WAL recovery mode, default 'tolerate-tail'; anything else is IMPULSE_ERR_CONFIG_INVALID. */
export function resolveWalRecovery(mode: unknown): WalRecoveryMode {
  if (mode === undefined) return 'tolerate-tail';
  if (!WAL_RECOVERY_MODES.includes(mode as WalRecoveryMode)) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `lsm walRecovery must be one of ${WAL_RECOVERY_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  }
  return mode as WalRecoveryMode;
}

/** The tuning a background job needs (plain data, sent to a worker thread). */
export function pickJobTuning(tuning: LsmTuning): Pick<LsmTuning, 'blockBytes' | 'restartInterval' | 'bloomBitsPerKey' | 'tableTargetBytes'> {
  return { blockBytes: tuning.blockBytes, restartInterval: tuning.restartInterval, bloomBitsPerKey: tuning.bloomBitsPerKey, tableTargetBytes: tuning.tableTargetBytes };
}

/**
 * Opening a store: read the manifest (or create one for a new store), open
 * every table it lists, delete what an interrupted flush or compaction left
 * behind, then read the WAL segments the manifest does not cover, decide what
 * to replay (wal-recovery.ts: torn tails vs damage, and the recovery modes)
 * and replay it. The engine then starts a new segment (recovery never
 * appends to an old one). The crash-safety argument is in README.md.
 *
 * A store is never started as a new, empty one over existing data: a
 * directory with tables or WAL segments but no manifest is refused.
 */
import { ImpulseError } from '../../errors.js';
import type { RecoveryReport } from '../engine.js';
import { type Vfs, joinPath } from '../../vfs/vfs.js';
import type { BlockCache } from './block-cache.js';
import type { LsmMutations } from './options.js';
import { corruption } from '../../util/corruption.js';
import { MANIFEST_NAME, MANIFEST_TEMP_NAME, type ManifestState, decodeManifest, parseFileName, tableFileName, walFileName } from './manifest.js';
import { TableReader } from './table.js';
import { Table, Version, type VersionSet } from './version.js';
import { SEGMENT_TEMP_SUFFIX } from './wal.js';
import { replayBatch, scanSegment } from './wal-reader.js';
import { type FoundSegment, type WalDiscard, type WalRecoveryMode, type WalRecoveryPlan, planWalRecovery } from './wal-recovery.js';

/** Suffix of a WAL segment that lost data in recovery, kept for the operator (never read or deleted by the engine). */
export const DISCARDED_SUFFIX = '.discarded';

export interface RecoveryEnvironment {
  readonly vfs: Vfs;
  readonly dir: string;
  readonly cache: BlockCache;
  readonly levelCount: number;
  readonly walRecovery: WalRecoveryMode;
  readonly mutations: LsmMutations;
}

/** What WAL recovery did, for the log and `/status`. */
export interface WalRecoveryReport {
  readonly mode: WalRecoveryMode;
  /** WAL segments found (numbered at or above the manifest's log number). */
  readonly segments: number;
  readonly recordsReplayed: number;
  readonly operationsReplayed: number;
  /** Everything not replayed, in log order (empty after a clean shutdown). */
  readonly discarded: readonly WalDiscard[];
}

export interface RecoveryResult {
  readonly plan: WalRecoveryPlan;
  readonly report: WalRecoveryReport;
}

/** Receives each replayed operation: `value === null` is a delete. Keys and values are views of the segment's bytes. */
export type ReplayVisitor = (key: Buffer, value: Buffer | null) => void;

/**
 * Recovers the store in `env.dir` into `versions` (tables installed, file and
 * log numbers set) and hands every replayed WAL operation, oldest first, to
 * `visit`. Segments after the last one replayed from are set aside (renamed
 * `*.log.discarded`) so the new segment can follow it. On failure, tables
 * opened so far are closed again.
 */
export async function recover(env: RecoveryEnvironment, versions: VersionSet, visit: ReplayVisitor): Promise<RecoveryResult> {
  const opened: Table[] = [];
  try {
    await env.vfs.mkdir(env.dir);
    const names = await env.vfs.list(env.dir);
    for (const name of names) if (name === MANIFEST_TEMP_NAME || name.endsWith('.log' + SEGMENT_TEMP_SUFFIX)) await env.vfs.unlink(joinPath(env.dir, name));
    const state = await readOrCreateManifest(env, versions, names);
    if (state.levels.slice(env.levelCount).some((level) => level.length > 0)) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `the store has tables below level ${env.levelCount - 1}; raise levelCount`);
    }
    const levels = await openTables(env, state, names, opened);
    const live = new Set(opened.map((table) => table.fileNumber));
    // Files the manifest does not list are leftovers of an interrupted flush or compaction.
    let highestNumber = state.nextFileNumber - 1;
    const logs: number[] = [];
    for (const name of names) {
      const parsed = parseFileName(name);
      if (parsed === undefined) continue;
      highestNumber = Math.max(highestNumber, parsed.fileNumber);
      if (parsed.kind === 'sst' && !live.has(parsed.fileNumber)) await env.vfs.unlink(joinPath(env.dir, name));
      else if (parsed.kind === 'log' && parsed.fileNumber < state.logNumber) await env.vfs.unlink(joinPath(env.dir, name));
      else if (parsed.kind === 'log') logs.push(parsed.fileNumber);
    }
    logs.sort((a, b) => a - b);
    const result = await replayWal(env, logs, state.logNumber, visit);
    versions.nextFileNumber = highestNumber + 1;
    versions.logNumber = state.logNumber;
    versions.install(new Version(levels));
    return result;
  } catch (error) {
    for (const table of opened) await table.reader.close().catch(() => undefined);
    throw error;
  }
}

/** Reads and plans the segments `logs`, replays what the plan says, and sets aside segments after the last one replayed from. */
async function replayWal(env: RecoveryEnvironment, logs: readonly number[], logNumber: number, visit: ReplayVisitor): Promise<RecoveryResult> {
  const segments: FoundSegment[] = [];
  for (const number of logs) {
    const name = walFileName(number);
    const path = joinPath(env.dir, name);
    segments.push({ number, name, scan: scanSegment(await env.vfs.readFile(path), path) });
  }
  const plan = planWalRecovery(segments, logNumber, walFileName(logNumber), env.walRecovery, env.mutations);
  let operationsReplayed = 0;
  for (const { segment, record } of plan.replay) operationsReplayed += replayBatch(segment.scan, record, visit);
  const setAside = logs.filter((number) => plan.last === undefined || number > plan.last.number);
  for (const number of setAside) {
    const path = joinPath(env.dir, walFileName(number));
    await env.vfs.rename(path, path + DISCARDED_SUFFIX);
  }
  if (setAside.length > 0) await env.vfs.syncDir(env.dir);
  const report: WalRecoveryReport = { mode: env.walRecovery, segments: logs.length, recordsReplayed: plan.replay.length, operationsReplayed, discarded: plan.discarded };
  return { plan, report };
}

/** The manifest on disk; for a new store (no manifest and no table or log file), a freshly written empty one. */
async function readOrCreateManifest(env: RecoveryEnvironment, versions: VersionSet, names: readonly string[]): Promise<ManifestState> {
  if (names.includes(MANIFEST_NAME)) {
    const path = joinPath(env.dir, MANIFEST_NAME);
    return decodeManifest(await env.vfs.readFile(path), path);
  }
  // The manifest is written before any WAL or table exists, so its absence means a new store,
  // unless there are tables or segments: then it was lost, and starting empty would drop them.
  const found = names.map(parseFileName).filter((parsed) => parsed !== undefined);
  if (found.length > 0) {
    const tables = found.filter((parsed) => parsed.kind === 'sst').length;
    throw new ImpulseError(
      'IMPULSE_ERR_ENGINE_CORRUPTION',
      `lsm: ${env.dir}: ${MANIFEST_NAME} is missing, but the directory holds ${tables} table(s) and ${found.length - tables} WAL segment(s); ` +
        `refusing to start as a new, empty store over existing data (restore ${MANIFEST_NAME} from a backup, or move the files away to start empty)`,
      { details: { file: joinPath(env.dir, MANIFEST_NAME), missing: MANIFEST_NAME, tables, walSegments: found.length - tables } },
    );
  }
  const state = { nextFileNumber: 1, logNumber: 0, levels: [] };
  await versions.writeManifest(versions.manifestOf(state.levels, state.nextFileNumber, state.logNumber));
  return state;
}

/** Opens every table the manifest lists, per level; a missing or damaged one is corruption. Each opened table is pushed to `opened`. */
async function openTables(env: RecoveryEnvironment, state: ManifestState, names: readonly string[], opened: Table[]): Promise<Table[][]> {
  const levels: Table[][] = [];
  for (let level = 0; level < env.levelCount; level++) {
    const tables: Table[] = [];
    for (const meta of state.levels[level] ?? []) {
      const path = joinPath(env.dir, tableFileName(meta.fileNumber));
      if (!names.includes(tableFileName(meta.fileNumber))) throw corruption('lsm', path, 'table listed in the manifest is missing');
      const reader = await TableReader.open(env.vfs, path, meta.fileNumber, env.cache);
      const table = new Table(meta, reader);
      opened.push(table);
      tables.push(table);
    }
    levels.push(tables);
  }
  return levels;
}

/** The engine-neutral report (engine.ts) of a WAL recovery: one log line, whether data beyond a crash's was lost, and the detail. */
export function describeWalRecovery(report: WalRecoveryReport): RecoveryReport {
  const parts = [`WAL recovery (${report.mode}): replayed ${report.operationsReplayed} operation(s) in ${report.recordsReplayed} record(s) from ${report.segments} segment(s)`];
  for (const discard of report.discarded) {
    const what = discard.records > 0 ? `${discard.records} complete record(s) with ${discard.operations} operation(s), ${discard.bytes} bytes` : `${discard.bytes} bytes`;
    parts.push(`discarded (${discard.kind}) ${what} of ${discard.file} from offset ${discard.offset}: ${discard.detail}`);
  }
  if (report.discarded.length === 0) parts.push('nothing discarded');
  const dataLost = report.discarded.some((discard) => discard.kind === 'damaged' || discard.kind === 'after-damage');
  return { summary: parts.join('; '), dataLost, details: { ...report } };
}

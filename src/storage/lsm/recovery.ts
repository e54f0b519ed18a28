/**
 * Opening a store: read the manifest (or create one for a new store), open
 * every table it lists, delete what an interrupted flush or compaction left
 * behind, and replay the WAL segments the manifest does not cover. The
 * engine then starts a new segment (recovery never appends to an old one).
 * The crash-safety argument this relies on is in README.md.
 */
import { ImpulseError } from '../../errors.js';
import { type Vfs, joinPath } from '../../vfs/vfs.js';
import type { BlockCache } from './block-cache.js';
import { corruption } from '../../util/corruption.js';
import { MANIFEST_NAME, MANIFEST_TEMP_NAME, type ManifestState, decodeManifest, parseFileName, tableFileName, walFileName, writeManifest } from './manifest.js';
import { TableReader } from './table.js';
import { Table, Version, type VersionSet } from './version.js';
import { type ReplayVisitor, replaySegment } from './wal.js';

export interface RecoveryEnvironment {
  readonly vfs: Vfs;
  readonly dir: string;
  readonly cache: BlockCache;
  readonly levelCount: number;
}

export interface RecoveryResult {
  /** WAL segments replayed (their operations went to `visit`). */
  readonly replayedLogs: number;
  /** Segments whose replay ended at a torn final record. */
  readonly tornWalTails: number;
}

/**
 * Recovers the store in `env.dir` into `versions` (tables installed, file and
 * log numbers set) and hands every replayed WAL operation, oldest first, to
 * `visit`. On failure, tables opened so far are closed again.
 */
export async function recover(env: RecoveryEnvironment, versions: VersionSet, visit: ReplayVisitor): Promise<RecoveryResult> {
  const opened: Table[] = [];
  try {
    await env.vfs.mkdir(env.dir);
    const names = await env.vfs.list(env.dir);
    if (names.includes(MANIFEST_TEMP_NAME)) await env.vfs.unlink(joinPath(env.dir, MANIFEST_TEMP_NAME));
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
    // Replay the WAL segments the manifest does not cover, oldest first.
    logs.sort((a, b) => a - b);
    let tornWalTails = 0;
    for (const number of logs) {
      const result = await replaySegment(env.vfs, joinPath(env.dir, walFileName(number)), visit);
      if (result.tornTail) tornWalTails++;
    }
    versions.nextFileNumber = highestNumber + 1;
    versions.logNumber = state.logNumber;
    versions.install(new Version(levels));
    return { replayedLogs: logs.length, tornWalTails };
  } catch (error) {
    for (const table of opened) await table.reader.close().catch(() => undefined);
    throw error;
  }
}

/** The manifest on disk; for a new store (no manifest and no table or log file), a freshly written empty one. */
async function readOrCreateManifest(env: RecoveryEnvironment, versions: VersionSet, names: readonly string[]): Promise<ManifestState> {
  if (names.includes(MANIFEST_NAME)) {
    const path = joinPath(env.dir, MANIFEST_NAME);
    return decodeManifest(await env.vfs.readFile(path), path);
  }
  // The manifest is written before any WAL or table exists, so its absence means a new store.
  if (names.some((name) => parseFileName(name) !== undefined)) {
    throw corruption('lsm', env.dir, `has table or log files but no ${MANIFEST_NAME}`);
  }
  const state = { nextFileNumber: 1, logNumber: 0, levels: [] };
  await writeManifest(env.vfs, env.dir, versions.manifestOf(state.levels, state.nextFileNumber, state.logNumber));
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

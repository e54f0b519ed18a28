/**
 * The manifest: the durable description of the tree — which tables are live
 * at which level, the oldest WAL segment still needed, and the next file
 * number. It is a full snapshot (not an edit log), rewritten on every flush
 * and compaction; it is small (tens of bytes per table).
 *
 * Layout: ["IMPLMAN1"][format version u32][next file number varint]
 * [log number varint][level count varint], then per level [table count varint]
 * and per table [file number varint][size varint][entry count varint]
 * [smallest key length varint][smallest key][largest key length varint][largest key],
 * then [crc32c of everything before it u32].
 *
 * Replacing it follows the order the ALICE study requires for an atomic
 * update: write `MANIFEST.tmp`, sync it, rename it over `MANIFEST`, sync the
 * directory. A crash at any point leaves either the old or the new manifest.
 */
import type { Vfs } from '../../vfs/vfs.js';
import { joinPath } from '../../vfs/vfs.js';
import { corruption } from '../../util/corruption.js';
import { Cursor, GrowableBuffer } from './coding.js';
import { ImpulseError } from '../../errors.js';
import { crc32c } from '../../util/crc32c.js';

export const MANIFEST_NAME = 'MANIFEST';
export const MANIFEST_TEMP_NAME = 'MANIFEST.tmp';
const MAGIC = Buffer.from('IMPLMAN1', 'latin1');
const FORMAT_VERSION = 1;

/** What the manifest records about one table. */
export interface TableMeta {
  readonly fileNumber: number;
  readonly sizeBytes: number;
  readonly entryCount: number;
  readonly smallest: Buffer;
  readonly largest: Buffer;
}

export interface ManifestState {
  /** File numbers at or above this are unused. */
  readonly nextFileNumber: number;
  /** WAL segments numbered below this are fully flushed and may be deleted. */
  readonly logNumber: number;
  /** Tables per level. Level 0 newest first; other levels sorted by key. */
  readonly levels: ReadonlyArray<readonly TableMeta[]>;
}

export function encodeManifest(state: ManifestState): Buffer {
  const out = new GrowableBuffer(4096);
  out.append(MAGIC);
  out.uint32(FORMAT_VERSION);
  out.varint(state.nextFileNumber);
  out.varint(state.logNumber);
  out.varint(state.levels.length);
  for (const level of state.levels) {
    out.varint(level.length);
    for (const table of level) {
      out.varint(table.fileNumber);
      out.varint(table.sizeBytes);
      out.varint(table.entryCount);
      out.varint(table.smallest.length);
      out.append(table.smallest);
      out.varint(table.largest.length);
      out.append(table.largest);
    }
  }
  out.uint32(crc32c(out.view()));
  return out.copy();
}

export function decodeManifest(data: Buffer, path: string): ManifestState {
  if (data.length < MAGIC.length + 8 || !data.subarray(0, MAGIC.length).equals(MAGIC)) throw corruption('lsm', path, 'manifest has no magic number');
  const body = data.length - 4;
  if (crc32c(data, 0, body) !== data.readUInt32LE(body)) throw corruption('lsm', path, 'manifest failed its checksum');
  const version = data.readUInt32LE(MAGIC.length);
  if (version !== FORMAT_VERSION) throw corruption('lsm', path, `manifest format version ${version} is not supported`);
  const cursor = new Cursor(data, MAGIC.length + 4, body, path);
  const nextFileNumber = cursor.varint();
  const logNumber = cursor.varint();
  const levelCount = cursor.varint();
  if (levelCount > 64) throw corruption('lsm', path, `manifest has ${levelCount} levels`);
  const levels: TableMeta[][] = [];
  for (let level = 0; level < levelCount; level++) {
    const tables: TableMeta[] = [];
    const count = cursor.varint();
    for (let i = 0; i < count; i++) {
      const fileNumber = cursor.varint();
      const sizeBytes = cursor.varint();
      const entryCount = cursor.varint();
      const smallest = Buffer.from(cursor.bytes(cursor.varint()));
      const largest = Buffer.from(cursor.bytes(cursor.varint()));
      tables.push({ fileNumber, sizeBytes, entryCount, smallest, largest });
    }
    levels.push(tables);
  }
  if (cursor.remaining !== 0) throw corruption('lsm', path, 'manifest has trailing bytes');
  return { nextFileNumber, logNumber, levels };
}

/** Atomically replaces the manifest in `dir` with `state` (write temp, sync, rename, sync dir). `skipDirSync` is a planted bug (LsmMutations). */
export async function writeManifest(vfs: Vfs, dir: string, state: ManifestState, skipDirSync = false): Promise<void> {
  const temp = joinPath(dir, MANIFEST_TEMP_NAME);
  const file = await vfs.open(temp, { create: true, truncate: true });
  try {
    await file.write(0, encodeManifest(state));
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await vfs.rename(temp, joinPath(dir, MANIFEST_NAME));
    if (!skipDirSync) await vfs.syncDir(dir);
  } catch (error) {
    throw new ManifestUncertainError(error);
  }
}

/**
 * The manifest's rename or the directory sync after it failed: after a crash
 * the new manifest may or may not be the one on disk. The engine must then
 * neither delete what the new one lists nor install anything else until it
 * is reopened (it becomes read-only).
 */
export class ManifestUncertainError extends ImpulseError {
  constructor(cause: unknown) {
    super('IMPULSE_ERR_ENGINE_IO', `lsm: replacing the manifest failed after the rename started (${cause instanceof Error ? cause.message : String(cause)}): the new manifest may or may not be durable`, { cause });
  }
}

export function tableFileName(fileNumber: number): string {
  return `${String(fileNumber).padStart(6, '0')}.sst`;
}

export function walFileName(fileNumber: number): string {
  return `${String(fileNumber).padStart(6, '0')}.log`;
}

/** Parses `NNNNNN.sst` / `NNNNNN.log`; undefined for other names. */
export function parseFileName(name: string): { kind: 'sst' | 'log'; fileNumber: number } | undefined {
  const match = /^(\d{6,})\.(sst|log)$/.exec(name);
  if (match === null) return undefined;
  return { kind: match[2] as 'sst' | 'log', fileNumber: Number(match[1]) };
}

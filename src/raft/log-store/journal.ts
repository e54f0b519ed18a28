/**
 * `LogJournal`: one fsync for the saves of every Raft group on a node.
 *
 * Each group keeps its own segmented log (log-store.ts), but a store opened
 * with a journal does not fsync its segment after a save: it writes the save
 * to its segment (page cache), then hands the same bytes and their place
 * (segment path, offset) to the node's one journal, which appends every save
 * handed to it during one turn — and all those that arrive while its fsync
 * runs — to one file with ONE write and ONE fdatasync, and only then reports
 * them durable (group commit). With 64 groups busy on a node this is one
 * fsync where there were up to 64 (TiKV's raft-engine and CockroachDB's one
 * Pebble WAL for all ranges make the same trade with a shared log; here the
 * per-group files stay, so recovery, compaction and snapshots are unchanged,
 * at the price of writing each save's bytes twice).
 *
 *   const journal = await LogJournal.open(vfs, `${dataDir}/raft-journal`, dataDir);   // replays, BEFORE any group's log opens
 *   SegmentedLogStore.open(vfs, dir, { journal });
 *   await journal.commit(segmentPath, offset, bytes);   // from the store: durable once resolved
 *   await journal.close();                               // after every store closed
 *
 * Why this is safe. A store issues its next save only after the previous one
 * is durable, and segments are append-only (a conflicting suffix is replaced
 * by appending records), so every save of a segment except the newest one is
 * in the journal or was fsynced by a checkpoint. After a crash `open`
 * rewrites every complete journal record into its segment at its offset
 * (positional, idempotent) and fsyncs those segments BEFORE the stores open:
 * each segment then holds every acknowledged save, followed at most by the
 * save that was in flight — the torn tail the store's own recovery already
 * handles. A journal record is dropped only at a checkpoint, which first
 * fsyncs every segment the journal holds records for; a save's segment write
 * has finished before its record is committed, so the fsync covers it.
 * Saves that create a segment, and new logs, sync on their own (they also
 * need directory fsyncs, and are rare). A new log first empties the journal
 * (`clear`): segment names repeat only across logs of one group directory
 * (a node that left a shard and hosts it again), and a destroyed log's
 * records must not be replayed into its successor's files.
 *
 * Records (layout at encodeRecord) carry the segment path (relative to the
 * data directory), the offset, the bytes, checksums of header and body, and
 * where their batch began. The replay ends at the first record that is
 * incomplete or damaged; if a valid record of a later batch follows, synced
 * data was damaged and `open` refuses (IMPULSE_ERR_ENGINE_CORRUPTION naming
 * the journal); otherwise the rest is the torn batch that was in flight.
 *
 * Bounds: the journal is checkpointed (segments fsynced, journal truncated)
 * once it passes `bytesMax` (default 64 MiB); commits that arrive meanwhile
 * wait. Failures are fail-stop: after a failed write or fsync every commit
 * (pending and later) is rejected with that error, and the groups' drivers
 * stop, as after their own failed fsync.
 */
import { ImpulseError } from '../../errors.js';
import { assert } from '../../util/assert.js';
import { corruption } from '../../util/corruption.js';
import { crc32c } from '../../util/crc32c.js';
import { dirName, isNotFound, joinPath, type Vfs, type VfsFile } from '../../vfs/vfs.js';

export const JOURNAL_FILE = 'journal.log';
const PATH_BYTES_MAX = 0xffff;
export const JOURNAL_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

export interface LogJournalOptions {
  /** Checkpoint once the journal holds more than this many bytes. 4 KiB .. 1 GiB; default 64 MiB. */
  readonly bytesMax?: number;
  /** TEST-ONLY planted bug: report commits durable without the journal's fsync (the crash sweep must catch it). */
  readonly acknowledgeBeforeSync?: boolean;
}

interface Pending {
  /** Relative to the root; '' for a `clear` (no record). */
  readonly path: string;
  readonly offset: number;
  readonly bytes: Uint8Array;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  /** A `clear`: the batch checkpoints before it writes. */
  readonly clear?: true;
}

/** What `open` found and did. */
export interface JournalReplay {
  /** Complete records rewritten into their segments. */
  readonly records: number;
  /** Records whose segment no longer exists (deleted by a compaction or with its group): skipped. */
  readonly skipped: number;
  /** Bytes after the last complete record (a torn tail), discarded. */
  readonly tornBytes: number;
}

export class LogJournal {
  private pending: Pending[] = [];
  private flushing = false;
  private scheduled = false;
  private bytes = 0;
  /** Segment paths (relative) that have records in the journal: what a checkpoint must fsync. */
  private readonly dirty = new Set<string>();
  private failure: Error | null = null;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private readonly counters = { commits: 0, syncs: 0, bytes: 0, checkpoints: 0 };

  private constructor(
    private readonly vfs: Vfs,
    private readonly root: string,
    private readonly file: VfsFile,
    private readonly bytesMax: number,
    private readonly acknowledgeBeforeSync: boolean,
    readonly replay: JournalReplay,
  ) {}

  /**
   * Opens (creating) the journal in `dir` for segments under `root`, and
   * first replays what a crash left in it (see the file comment), leaving it
   * empty. Call before opening any store that uses it.
   */
  static async open(vfs: Vfs, dir: string, root: string, options: LogJournalOptions = {}): Promise<LogJournal> {
    const bytesMax = options.bytesMax ?? JOURNAL_BYTES_MAX_DEFAULT;
    if (!Number.isSafeInteger(bytesMax) || bytesMax < 4096 || bytesMax > 1024 ** 3) {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `raft log journal: bytesMax must be an integer in [4096, ${1024 ** 3}], not ${bytesMax}`);
    }
    await vfs.mkdir(dir);
    const path = joinPath(dir, JOURNAL_FILE);
    const existed = await vfs.exists(path);
    const file = await vfs.open(path, { create: true });
    try {
      const replay = existed ? await replayInto(vfs, root, await file.read(0, await file.size()), path) : { records: 0, skipped: 0, tornBytes: 0 };
      if (existed) {
        await file.truncate(0);
        await file.sync();
      } else {
        await file.sync();
        await vfs.syncDir(dir);
        await vfs.syncDir(dirName(dir));
      }
      return new LogJournal(vfs, root, file, bytesMax, options.acknowledgeBeforeSync === true, replay);
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Makes `bytes`, written (and finished writing) at `offset` of the segment
   * `path` (under the root), durable: resolves after the journal's fsync that
   * carries them; rejects with the journal's first failure.
   */
  commit(path: string, offset: number, bytes: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', 'raft log journal: closed'));
    if (this.failure !== null) return Promise.reject(this.failure);
    const relative = this.relative(path);
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ path: relative, offset, bytes, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Empties the journal (every segment it holds records for fsynced first) and
   * resolves once it is empty. A log calls this before it creates its files
   * where a destroyed log of the same group may have lived (a node that left a
   * shard and hosts it again): the old log's records name the same segment
   * paths, and a replay after a crash would write them into the new files.
   */
  clear(): Promise<void> {
    if (this.closed) return Promise.reject(new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', 'raft log journal: closed'));
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ path: '', offset: 0, bytes: new Uint8Array(0), resolve, reject, clear: true });
      this.schedule();
    });
  }

  /** Figures: commits, fsyncs (one per batch), bytes appended, checkpoints, the current size; what `open` replayed. */
  stats(): Readonly<Record<string, number>> {
    const { commits, syncs, bytes, checkpoints } = this.counters;
    return {
      journal_commits: commits,
      journal_fsyncs: syncs,
      journal_bytes_written: bytes,
      journal_checkpoints: checkpoints,
      journal_bytes: this.bytes,
      journal_replayed_records: this.replay.records,
      journal_replay_skipped_records: this.replay.skipped,
      journal_replay_torn_bytes: this.replay.tornBytes,
    };
  }

  /** Waits for the batches in flight, then closes the file (the stores using it must have closed: later commits are refused). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A finished batch starts the next one (commits that came during it): wait until none follows.
    for (let current = this.idle; ; current = this.idle) {
      await current;
      if (current === this.idle) break;
    }
    for (const waiting of this.pending.splice(0)) waiting.reject(new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', 'raft log journal: closed'));
    await this.file.close();
  }

  private relative(path: string): string {
    const root = joinPath(this.root);
    const prefix = root === '' || root.endsWith('/') ? root : `${root}/`;
    assert(path.startsWith(prefix), 'raft log journal: a segment outside the journal\'s root', path, this.root);
    return path.slice(prefix.length);
  }

  /** Starts a batch on the next turn, so every save handed over in this one joins it; a batch in flight starts the next itself. */
  private schedule(): void {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushNext();
    });
  }

  private flushNext(): void {
    if (this.flushing || this.pending.length === 0) return;
    const batch = this.pending.splice(0);
    this.flushing = true;
    this.idle = this.flush(batch).then(
      () => {
        this.flushing = false;
        for (const waiting of batch) waiting.resolve();
        this.flushNext();
      },
      (error: unknown) => {
        this.flushing = false;
        this.failure ??= error instanceof Error ? error : new ImpulseError('IMPULSE_ERR_INTERNAL', String(error));
        for (const waiting of [...batch, ...this.pending.splice(0)]) waiting.reject(this.failure);
      },
    );
  }

  /** One write and one fsync for the whole batch; a checkpoint first when the journal is full. */
  private async flush(batch: readonly Pending[]): Promise<void> {
    if (this.bytes > this.bytesMax || batch.some((waiting) => waiting.clear === true)) await this.checkpoint();
    const saves = batch.filter((waiting) => waiting.clear !== true);
    if (saves.length === 0) return;
    const batchStart = this.bytes;
    const data = Buffer.concat(saves.map((waiting) => encodeRecord(waiting.path, waiting.offset, waiting.bytes, batchStart)));
    await this.file.write(this.bytes, data);
    this.bytes += data.length;
    for (const waiting of saves) this.dirty.add(waiting.path);
    if (this.acknowledgeBeforeSync) {
      void this.file.sync().catch(() => undefined);
    } else {
      await this.file.sync();
    }
    this.counters.syncs++;
    this.counters.commits += saves.length;
    this.counters.bytes += data.length;
  }

  /** Fsyncs every segment with records here (each one's writes finished before its commit), then empties the journal. */
  private async checkpoint(): Promise<void> {
    for (const path of this.dirty) await syncIfPresent(this.vfs, joinPath(this.root, path));
    this.dirty.clear();
    await this.file.truncate(0);
    await this.file.sync();
    this.bytes = 0;
    this.counters.checkpoints++;
  }
}

/**
 * Record layout (little-endian): headerCrc u32 (crc32c of bytes [4, 32)) · bodyCrc u32 · body
 * length u32 · path length u16 · reserved u16 (0) · segment offset u64 · batch start u64 (where
 * the record's batch begins in the journal) · body: path (UTF-8) then the saved bytes.
 */
const HEADER_BYTES = 32;

function encodeRecord(path: string, offset: number, bytes: Uint8Array, batchStart: number): Buffer {
  const name = Buffer.from(path, 'utf8');
  assert(name.length <= PATH_BYTES_MAX && Number.isSafeInteger(offset) && offset >= 0, 'raft log journal: a record it cannot encode', path, offset);
  const record = Buffer.alloc(HEADER_BYTES + name.length + bytes.length);
  record.writeUInt32LE(name.length + bytes.length, 8);
  record.writeUInt16LE(name.length, 12);
  record.writeBigUInt64LE(BigInt(offset), 16);
  record.writeBigUInt64LE(BigInt(batchStart), 24);
  name.copy(record, HEADER_BYTES);
  record.set(bytes, HEADER_BYTES + name.length);
  record.writeUInt32LE(crc32c(record, HEADER_BYTES), 4);
  record.writeUInt32LE(crc32c(record, 4, HEADER_BYTES), 0);
  return record;
}

interface DecodedRecord {
  readonly path: string;
  readonly offset: number;
  readonly batchStart: number;
  readonly bytes: Buffer;
  readonly end: number;
}

/** The record at `at`, or null when it is incomplete or fails a checksum. */
function decodeRecord(data: Buffer, at: number): DecodedRecord | null {
  if (data.length - at < HEADER_BYTES) return null;
  if (crc32c(data, at + 4, at + HEADER_BYTES) !== data.readUInt32LE(at)) return null;
  const bodyLength = data.readUInt32LE(at + 8);
  const pathLength = data.readUInt16LE(at + 12);
  const end = at + HEADER_BYTES + bodyLength;
  if (pathLength > bodyLength || end > data.length || data.readUInt16LE(at + 14) !== 0) return null;
  if (crc32c(data, at + HEADER_BYTES, end) !== data.readUInt32LE(at + 4)) return null;
  const offset = Number(data.readBigUInt64LE(at + 16));
  const batchStart = Number(data.readBigUInt64LE(at + 24));
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(batchStart) || batchStart > at) return null;
  const path = data.subarray(at + HEADER_BYTES, at + HEADER_BYTES + pathLength).toString('utf8');
  return { path, offset, batchStart, bytes: data.subarray(at + HEADER_BYTES + pathLength, end), end };
}

/**
 * Where the complete records end: at the first record that is incomplete or
 * fails a checksum, at `from`. The bytes after it are a torn tail — the batch
 * that was being written, parts of which may have reached the disk out of
 * order — unless a valid record of a LATER batch follows (its batch start lies
 * after `from`): a batch is written only after the one before it was fsynced,
 * so that proves synced data damaged, and the journal refuses to open.
 */
function checkTail(data: Buffer, from: number, path: string): void {
  for (let at = from + 1; at + HEADER_BYTES <= data.length; at++) {
    const record = decodeRecord(data, at);
    if (record !== null && record.batchStart > from) {
      throw corruption('raft log journal', path, `the record at offset ${from} is damaged, and a later batch's record follows at ${at}: synced saves were damaged`);
    }
  }
}

/** Rewrites every complete record into its segment (if the segment still exists), then fsyncs those segments. */
async function replayInto(vfs: Vfs, root: string, data: Buffer, journalPath: string): Promise<JournalReplay> {
  let at = 0;
  for (let record = decodeRecord(data, 0); record !== null; record = decodeRecord(data, at)) at = record.end;
  if (at < data.length) checkTail(data, at, journalPath);
  const files = new Map<string, VfsFile | null>();
  let records = 0;
  let skipped = 0;
  at = 0;
  try {
    for (let record = decodeRecord(data, 0); record !== null; record = decodeRecord(data, at)) {
      at = record.end;
      const path = joinPath(root, record.path);
      if (!files.has(path)) files.set(path, await openIfPresent(vfs, path));
      const file = files.get(path)!;
      if (file === null) {
        skipped++;
        continue;
      }
      await file.write(record.offset, record.bytes);
      records++;
    }
    for (const file of files.values()) await file?.sync();
  } finally {
    await Promise.allSettled([...files.values()].map((file) => file?.close()));
  }
  return { records, skipped, tornBytes: data.length - at };
}

async function openIfPresent(vfs: Vfs, path: string): Promise<VfsFile | null> {
  try {
    return await vfs.open(path);
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}

async function syncIfPresent(vfs: Vfs, path: string): Promise<void> {
  const file = await openIfPresent(vfs, path);
  if (file === null) return;
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

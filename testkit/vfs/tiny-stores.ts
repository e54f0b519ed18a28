/**
 * Tiny key-value stores for testing the crash harness and MemVfs (STYLE.md
 * rule 12): each is correct by default and has switchable, deliberate
 * durability bugs (`Flaws`), so a test can show the harness ACCEPTS the
 * correct store and REJECTS each broken one. Test fixtures only.
 */
import { ImpulseError } from '../../src/errors.js';
import type { WriteOp } from '../../src/storage/engine.js';
import type { Random } from '../../src/util/random.js';
import { isNotFound, type Vfs, type VfsFile } from '../../src/vfs/vfs.js';
import type { KvHistory, KvWriteOp, KvWriter } from '../storage/kv-crash.js';


/** Deliberate bugs a tiny store can have. */
export interface Flaws {
  /** Acknowledge before (without) fsync of the data. */
  readonly skipFileSync?: boolean;
  /** Create files without fsync of the directory. */
  readonly skipDirSync?: boolean;
  /** Write each op of a batch as its own record (batches not atomic). */
  readonly splitBatches?: boolean;
  /** Ignore a failed fsync (fsyncgate) and acknowledge anyway. */
  readonly swallowSyncErrors?: boolean;
  /** Rename the snapshot into place without syncing it first. */
  readonly skipSyncBeforeRename?: boolean;
  /** On an I/O error, fail with a TypeError instead of the ImpulseError. */
  readonly garbleErrors?: boolean;
  /** Report a failed fsync but keep accepting writes (no poisoning). */
  readonly continueAfterSyncError?: boolean;
  /** On open, rewrite the log in place (truncate, sync, write back): not crash-safe. */
  readonly rewriteOnOpen?: boolean;
  /** ManifestStore: no syncDir after renaming the new manifest into place (before unlinking the old table). */
  readonly skipDirSyncAfterRename?: boolean;
  /** ManifestStore: no syncDir after creating a table (before renaming a manifest that names it into place). */
  readonly skipDirSyncBeforeManifest?: boolean;
}

export type Store = KvWriter & { entries(): Array<[Buffer, Buffer]>; close(): Promise<void> };

function fnv1a(data: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of data) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

function applyOps(state: Map<string, Buffer>, ops: ReadonlyArray<readonly [string, string, string?]>): void {
  for (const [type, keyHex, valueHex] of ops) {
    if (type === 'put') state.set(keyHex, Buffer.from(valueHex ?? '', 'hex'));
    else state.delete(keyHex);
  }
}

function encodeOps(ops: readonly WriteOp[]): Array<[string, string, string?]> {
  return ops.map((op) => (op.type === 'put' ? ['put', Buffer.from(op.key).toString('hex'), Buffer.from(op.value).toString('hex')] : ['del', Buffer.from(op.key).toString('hex')]));
}

function toEntries(state: Map<string, Buffer>): Array<[Buffer, Buffer]> {
  return [...state].map(([key, value]) => [Buffer.from(key, 'hex'), value]);
}

/** What every tiny store shares: the KvWriter calls funnel into one atomic `write(ops)`; `state` is what it holds. */
abstract class TinyStore implements Store {
  protected constructor(protected readonly state: Map<string, Buffer>) {}

  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.write([{ type: 'put', key, value }]);
  }

  del(key: Uint8Array): Promise<void> {
    return this.write([{ type: 'del', key }]);
  }

  batch(ops: readonly WriteOp[]): Promise<void> {
    return this.write(ops);
  }

  entries(): Array<[Buffer, Buffer]> {
    return toEntries(this.state);
  }

  abstract close(): Promise<void>;

  /** Applies `ops` atomically and durably (or not, per the store's flaws) before resolving. */
  protected abstract write(ops: readonly WriteOp[]): Promise<void>;
}

/** One log record: [u32 length][u32 fnv1a of the payload][JSON ops]. */
function encodeRecord(encoded: ReadonlyArray<readonly [string, string, string?]>): Buffer {
  const payload = Buffer.from(JSON.stringify(encoded));
  const header = Buffer.alloc(8);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt32LE(fnv1a(payload), 4);
  return Buffer.concat([header, payload]);
}

/** Applies the valid records of `data` from `offset` on to `state`; returns where the valid prefix ends (a torn tail fails its checksum). */
function replayRecords(data: Buffer, offset: number, state: Map<string, Buffer>): number {
  while (offset + 8 <= data.length) {
    const length = data.readUInt32LE(offset);
    const payload = data.subarray(offset + 8, offset + 8 + length);
    if (payload.length < length || fnv1a(payload) !== data.readUInt32LE(offset + 4)) break;
    applyOps(state, JSON.parse(payload.toString()));
    offset += 8 + length;
  }
  return offset;
}

/**
 * An append-only log: records [u32 length][u32 fnv1a][JSON ops]. Open reads the
 * valid prefix (a torn tail fails its checksum) and cuts the rest off. A failed
 * write poisons the store (every later write rejects), as fsyncgate teaches.
 */
export class LogStore extends TinyStore {
  private end = 0;
  private poisoned: unknown;

  private constructor(
    private readonly file: VfsFile,
    state: Map<string, Buffer>,
    private readonly flaws: Flaws,
  ) {
    super(state);
  }

  static async open(vfs: Vfs, flaws: Flaws = {}): Promise<LogStore> {
    await vfs.mkdir('db');
    const existed = await vfs.exists('db/log');
    const file = await vfs.open('db/log', { create: true });
    if (!existed && !flaws.skipDirSync) await vfs.syncDir('db');
    const size = await file.size();
    const data = await file.read(0, size);
    const state = new Map<string, Buffer>();
    const offset = replayRecords(data, 0, state);
    if (offset < size) {
      await file.truncate(offset);
      await file.sync();
    }
    if (flaws.rewriteOnOpen && offset > 0) {
      const valid = data.subarray(0, offset);
      await file.truncate(0);
      await file.sync();
      await file.write(0, valid);
      await file.sync();
    }
    const store = new LogStore(file, state, flaws);
    store.end = offset;
    return store;
  }

  close(): Promise<void> {
    return this.file.close();
  }

  protected async write(ops: readonly WriteOp[]): Promise<void> {
    if (this.poisoned !== undefined) throw new ImpulseError('IMPULSE_ERR_ENGINE_IO', 'log store failed earlier', { cause: this.poisoned });
    const records = this.flaws.splitBatches ? ops.map((op) => [op]) : [ops];
    try {
      for (const record of records) {
        const encoded = encodeOps(record);
        const bytes = encodeRecord(encoded);
        await this.file.write(this.end, bytes);
        this.end += bytes.length;
        if (!this.flaws.skipFileSync) {
          try {
            await this.file.sync();
          } catch (error) {
            if (!this.flaws.swallowSyncErrors) throw error;
          }
        }
        applyOps(this.state, encoded);
      }
    } catch (error) {
      if (!this.flaws.continueAfterSyncError) this.poisoned = error;
      if (this.flaws.garbleErrors) throw new TypeError('oops: cannot read properties of undefined');
      throw error;
    }
  }
}

/** Rewrites the whole state on every write: write db/state.tmp, sync, rename over db/state, sync db. */
export class SnapshotStore extends TinyStore {
  private constructor(
    private readonly vfs: Vfs,
    state: Map<string, Buffer>,
    private readonly flaws: Flaws,
  ) {
    super(state);
  }

  static async open(vfs: Vfs, flaws: Flaws = {}): Promise<SnapshotStore> {
    await vfs.mkdir('db');
    const state = new Map<string, Buffer>();
    try {
      applyOps(state, JSON.parse((await vfs.readFile('db/state')).toString()));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    return new SnapshotStore(vfs, state, flaws);
  }

  async close(): Promise<void> {
    // nothing open between writes
  }

  protected async write(ops: readonly WriteOp[]): Promise<void> {
    const next = new Map(this.state);
    applyOps(next, encodeOps(ops));
    const file = await this.vfs.open('db/state.tmp', { create: true, truncate: true });
    await file.write(0, Buffer.from(JSON.stringify([...next].map(([key, value]) => ['put', key, value.toString('hex')]))));
    if (!this.flaws.skipSyncBeforeRename) await file.sync();
    await file.close();
    await this.vfs.rename('db/state.tmp', 'db/state');
    if (!this.flaws.skipDirSync) await this.vfs.syncDir('db');
    this.state.clear();
    for (const [key, value] of next) this.state.set(key, value);
  }
}

/**
 * A log whose first 4 bytes are a commit marker (the committed end); records
 * (no checksums: the marker is trusted) follow. Correct only with an fsync
 * BETWEEN the record and the marker (`skipFileSync` drops that barrier).
 * Not torn-safe (a torn 4-byte marker is garbage): test it with 'reorder'.
 */
export class CommitMarkerStore extends TinyStore {
  private constructor(
    private readonly file: VfsFile,
    private end: number,
    state: Map<string, Buffer>,
    private readonly flaws: Flaws,
  ) {
    super(state);
  }

  static async open(vfs: Vfs, flaws: Flaws = {}): Promise<CommitMarkerStore> {
    await vfs.mkdir('db');
    const existed = await vfs.exists('db/data');
    const file = await vfs.open('db/data', { create: true });
    if (!existed) {
      const marker = Buffer.alloc(4);
      marker.writeUInt32LE(4);
      await file.write(0, marker);
      await file.sync();
      await vfs.syncDir('db');
    }
    const data = await file.read(0, await file.size());
    const state = new Map<string, Buffer>();
    const end = data.length >= 4 ? data.readUInt32LE(0) : 4;
    for (let offset = 4; offset < end; ) {
      const length = data.readUInt32LE(offset);
      applyOps(state, JSON.parse(data.subarray(offset + 4, offset + 4 + length).toString()));
      offset += 4 + length;
    }
    return new CommitMarkerStore(file, end, state, flaws);
  }

  close(): Promise<void> {
    return this.file.close();
  }

  protected async write(ops: readonly WriteOp[]): Promise<void> {
    const encoded = encodeOps(ops);
    const payload = Buffer.from(JSON.stringify(encoded));
    const record = Buffer.alloc(4 + payload.length);
    record.writeUInt32LE(payload.length);
    payload.copy(record, 4);
    await this.file.write(this.end, record);
    if (!this.flaws.skipFileSync) await this.file.sync(); // the barrier: record durable before the marker points past it
    const marker = Buffer.alloc(4);
    marker.writeUInt32LE(this.end + record.length);
    await this.file.write(0, marker);
    await this.file.sync();
    this.end += record.length;
    applyOps(this.state, encoded);
  }
}

/**
 * The shape of an LSM-tree, shrunk: every write is appended to db/log (records
 * as in LogStore, synced before acknowledging). Every third write, the whole
 * state goes to a new table db/table-<n> (written, synced, its name synced),
 * then db/MANIFEST is replaced (write MANIFEST.tmp, sync, rename, syncDir) by
 * one naming that table and the log offset it covers, and the previous table
 * is unlinked. Open reads the manifest, the table it names (a missing one
 * fails the recovery) and replays the log from the covered offset.
 *
 * Its flaws are missing directory syncs whose effect only a file system that
 * reorders directory changes shows: `skipDirSyncAfterRename` (a power loss
 * may keep the unlink of the old table but lose the rename of the manifest
 * that no longer names it) and `skipDirSyncBeforeManifest` (it may keep the
 * manifest's rename but lose the new table's name).
 */
export class ManifestStore extends TinyStore {
  private writes = 0;

  private constructor(
    private readonly vfs: Vfs,
    private readonly log: VfsFile,
    private end: number,
    private table: number,
    state: Map<string, Buffer>,
    private readonly flaws: Flaws,
  ) {
    super(state);
  }

  static async open(vfs: Vfs, flaws: Flaws = {}): Promise<ManifestStore> {
    await vfs.mkdir('db');
    let manifest = { table: 0, logOffset: 0 };
    try {
      manifest = JSON.parse((await vfs.readFile('db/MANIFEST')).toString()) as typeof manifest;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const state = new Map<string, Buffer>();
    if (manifest.table > 0) applyOps(state, JSON.parse((await vfs.readFile(tablePath(manifest.table))).toString()));
    const existed = await vfs.exists('db/log');
    const log = await vfs.open('db/log', { create: true });
    if (!existed) await vfs.syncDir('db');
    const data = await log.read(0, await log.size());
    const end = replayRecords(data, manifest.logOffset, state);
    if (end < data.length) {
      await log.truncate(end);
      await log.sync();
    }
    return new ManifestStore(vfs, log, end, manifest.table, state, flaws);
  }

  close(): Promise<void> {
    return this.log.close();
  }

  protected async write(ops: readonly WriteOp[]): Promise<void> {
    const encoded = encodeOps(ops);
    const record = encodeRecord(encoded);
    await this.log.write(this.end, record);
    await this.log.sync();
    this.end += record.length;
    applyOps(this.state, encoded);
    if (++this.writes % 3 === 0) await this.flush();
  }

  private async flush(): Promise<void> {
    const { vfs, flaws } = this;
    const number = this.table + 1;
    const table = await vfs.open(tablePath(number), { create: true, truncate: true });
    await table.write(0, Buffer.from(JSON.stringify([...this.state].map(([key, value]) => ['put', key, value.toString('hex')]))));
    await table.sync();
    await table.close();
    if (!flaws.skipDirSyncBeforeManifest) await vfs.syncDir('db'); // the table's name is durable before a manifest names it
    const manifest = await vfs.open('db/MANIFEST.tmp', { create: true, truncate: true });
    await manifest.write(0, Buffer.from(JSON.stringify({ table: number, logOffset: this.end })));
    await manifest.sync();
    await manifest.close();
    await vfs.rename('db/MANIFEST.tmp', 'db/MANIFEST');
    if (!flaws.skipDirSyncAfterRename) await vfs.syncDir('db'); // the new manifest is durable before the old table goes
    if (this.table > 0) await vfs.unlink(tablePath(this.table));
    this.table = number;
  }
}

function tablePath(number: number): string {
  return `db/table-${number}`;
}

export type StoreKind = { open(vfs: Vfs, flaws?: Flaws): Promise<Store> };

/** Puts (unique values), deletes and batches, chosen from `random`; about 14 writes. */
export async function kvWorkload(store: Store, history: KvHistory, random: Random): Promise<void> {
  for (let i = 0; i < 14; i++) {
    const key = `k${random.int(5)}`;
    const choice = random.int(10);
    if (choice < 5) await history.put(store, key, `v${i}`);
    else if (choice < 7) await history.del(store, key);
    else {
      const ops: KvWriteOp[] = [{ type: 'put', key, value: `b${i}a` }, { type: 'put', key: `k${(random.int(4) + 1 + Number(key.slice(1))) % 5}`, value: `b${i}b` }];
      if (random.chance(0.5)) ops.push({ type: 'del', key: `k${random.int(5)}` });
      await history.batch(store, ops);
    }
  }
}

/**
 * The `leveldb` engine: the real LevelDB through `classic-level` (the
 * maintained native binding of the Level project). Every `_write` is one
 * LevelDB WriteBatch, so our group commit (src/storage/engine.ts) turns N
 * concurrent writers into one `sync: true` batch and one fsync of LevelDB's log.
 */
import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { ImpulseError } from '../../errors.js';
import { Engine, type EngineOptions, type EngineStats, type Entry, type KeyRange, type WriteOp } from '../engine.js';
import { diskUsageBytes } from '../disk-usage.js';

export interface LevelDbOptions extends EngineOptions {
  /** LevelDB's block cache, bytes. Default 8 MiB (LevelDB's own default). */
  readonly cacheBytes?: number;
  /** LevelDB's memtable size, bytes. Default 4 MiB (LevelDB's own default). */
  readonly writeBufferBytes?: number;
}

type Db = ClassicLevel<Buffer, Buffer>;

export class LevelDbEngine extends Engine {
  readonly name = 'leveldb';
  readonly supports = { durable: true, cheapKeyCount: false } as const;

  private readonly dataDir: string;
  private db: Db | undefined;

  constructor(private readonly options: LevelDbOptions) {
    super(options);
    if (!options.dataDir) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'the leveldb engine needs a data directory');
    this.dataDir = options.dataDir;
  }

  protected async _open(): Promise<void> {
    await mkdir(this.dataDir, { recursive: true });
    const db: Db = new ClassicLevel<Buffer, Buffer>(this.dataDir, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      cacheSize: this.options.cacheBytes ?? 8 * 1024 * 1024,
      writeBufferSize: this.options.writeBufferBytes ?? 4 * 1024 * 1024,
    });
    try {
      await db.open();
    } catch (error) {
      throw translate(error, `opening LevelDB at ${this.dataDir}`);
    }
    this.db = db;
  }

  protected async _get(key: Buffer): Promise<Buffer | undefined> {
    try {
      return (await this.requireDb().get(key)) ?? undefined;
    } catch (error) {
      throw translate(error, 'LevelDB get');
    }
  }

  protected async _write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    const batch = ops.map((op) =>
      op.type === 'put'
        ? { type: 'put' as const, key: asBuffer(op.key), value: asBuffer(op.value) }
        : { type: 'del' as const, key: asBuffer(op.key) },
    );
    try {
      await this.requireDb().batch(batch, { sync });
    } catch (error) {
      throw translate(error, 'LevelDB write');
    }
  }

  protected async _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    const bounds: Record<string, Buffer> = {};
    if (range.lower) bounds[range.lowerInclusive ? 'gte' : 'gt'] = range.lower;
    if (range.upper) bounds[range.upperInclusive ? 'lte' : 'lt'] = range.upper;
    try {
      const iterator = this.requireDb().iterator({ ...bounds, reverse, limit });
      try {
        const pairs = await iterator.all();
        return pairs.map(([key, value]) => ({ key, value }));
      } finally {
        await iterator.close();
      }
    } catch (error) {
      throw translate(error, 'LevelDB range');
    }
  }

  protected async _stats(): Promise<EngineStats> {
    const db = this.requireDb();
    const figures: Record<string, number> = {};
    // "leveldb.num-files-at-level<N>" is cheap (in-memory version set).
    for (let level = 0; level < 7; level++) {
      const files = Number(db.getProperty(`leveldb.num-files-at-level${level}`));
      if (Number.isFinite(files)) figures[`level${level}_files`] = files;
    }
    return { diskBytes: await diskUsageBytes(this.dataDir), figures };
  }

  protected async _close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    await db?.close();
  }

  private requireDb(): Db {
    if (!this.db) throw new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', 'LevelDB is not open');
    return this.db;
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Maps classic-level's error codes onto our catalog, keeping the original as the cause. */
function translate(error: unknown, what: string): ImpulseError {
  if (error instanceof ImpulseError) return error;
  const cause = (error as { cause?: { message?: string; code?: string } } | undefined)?.cause;
  // abstract-level wraps open failures: the specific code sits on the cause.
  const code = cause?.code ?? (error as { code?: string } | undefined)?.code;
  const detail = `${what}: ${(error as Error)?.message ?? String(error)}${cause?.message ? ` (${cause.message})` : ''}`;
  if (code === 'LEVEL_LOCKED') return new ImpulseError('IMPULSE_ERR_ENGINE_LOCKED', detail, { cause: error });
  if (code === 'LEVEL_CORRUPTION') return new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', detail, { cause: error });
  if (code === 'LEVEL_DATABASE_NOT_OPEN') return new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', detail, { cause: error });
  return new ImpulseError('IMPULSE_ERR_ENGINE_IO', detail, { cause: error });
}

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isImpulseError } from '../../errors.js';
import { runEngineConformance } from '../../../testkit/storage/conformance.js';
import { checkGetSyncAgreesWithGet } from '../../../testkit/storage/get-sync.js';
import { LevelDbEngine } from './leveldb-engine.js';

runEngineConformance({ name: 'leveldb', create: (dir, options) => new LevelDbEngine({ ...options, dataDir: dir }), propertyRuns: 40, readsSync: true });

describe('leveldb engine specifics', () => {
  it('refuses a data directory another engine instance holds, with a clear code', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-leveldb-lock-'));
    const first = new LevelDbEngine({ dataDir: dir });
    await first.open();
    try {
      const second = new LevelDbEngine({ dataDir: dir });
      await assert.rejects(second.open(), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_LOCKED'));
    } finally {
      await first.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports disk use and per-level files in stats', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-leveldb-stats-'));
    const engine = new LevelDbEngine({ dataDir: dir });
    await engine.open();
    try {
      await engine.put(Buffer.from('k'), Buffer.alloc(1000, 1));
      const stats = await engine.stats();
      assert.ok((stats.diskBytes ?? 0) > 1000, `disk bytes ${stats.diskBytes}`);
      assert.equal(typeof stats.figures['level0_files'], 'number');
      assert.equal(stats.figures['group_commit_calls'], 1);
    } finally {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start a new, empty store when CURRENT is missing, and leaves the files alone', async () => {
    await withDir('current', async (dir) => {
      await fill(dir, 3000);
      const before = (await readdir(dir)).sort();
      await unlink(join(dir, 'CURRENT'));
      const engine = new LevelDbEngine({ dataDir: dir });
      await assert.rejects(engine.open(), (error: unknown) => {
        assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), String(error));
        assert.match(error.message, new RegExp(`leveldb: ${escape(join(dir, 'CURRENT'))}: missing, while the directory holds LevelDB data \\(.*MANIFEST-\\d+`));
        assert.match(error.message, /\.ldb/);
        return true;
      });
      assert.deepEqual((await readdir(dir)).sort(), before.filter((name) => name !== 'CURRENT'), 'no file was created or deleted');
    });
  });

  it('creates a store in a missing or empty directory, and in one holding only LevelDB logs and LOCK', async () => {
    await withDir('fresh', async (dir) => {
      for (const sub of ['missing/deeper', 'only-lock']) {
        const path = join(dir, sub);
        if (sub === 'only-lock') {
          await fill(path, 1);
          for (const name of await readdir(path)) if (!['LOCK', 'LOG', 'LOG.old'].includes(name)) await rm(join(path, name), { recursive: true });
        }
        const engine = new LevelDbEngine({ dataDir: path });
        await engine.open();
        assert.equal(await engine.get(Buffer.from('k0')), undefined);
        await engine.put(Buffer.from('a'), Buffer.from('b'));
        await engine.close();
        assert.ok((await stat(join(path, 'CURRENT'))).isFile());
      }
    });
  });

  it('names the MANIFEST when its checksum fails at open', async () => {
    await withDir('manifest', async (dir) => {
      await fill(dir, 500);
      const manifest = (await readFile(join(dir, 'CURRENT'), 'utf8')).trim();
      const bytes = await readFile(join(dir, manifest));
      bytes[Math.floor(bytes.length / 2)]! ^= 0x10;
      await writeFile(join(dir, manifest), bytes);
      const engine = new LevelDbEngine({ dataDir: dir });
      await assert.rejects(
        engine.open(),
        (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && error.message.startsWith(`leveldb: ${join(dir, manifest)}: `) && /checksum mismatch/.test(error.message),
      );
    });
  });

  it('a range scan fails with the corruption error on a damaged table, as get does, even when the page fills', async () => {
    await withDir('scan', async (dir) => {
      const keys = await fill(dir, 20_000);
      const tables = (await readdir(dir)).filter((name) => name.endsWith('.ldb')).sort();
      assert.ok(tables.length >= 3, `the data spans several tables: ${tables.join(', ')}`);
      const table = join(dir, tables[Math.floor(tables.length / 2)]!);
      const bytes = await readFile(table);
      bytes[Math.floor(bytes.length / 3)]! ^= 0x40; // inside a snappy-compressed data block
      await writeFile(table, bytes);

      const engine = new LevelDbEngine({ dataDir: dir });
      await engine.open();
      try {
        const damaged: number[] = [];
        for (let i = 0; i < keys.length; i++) {
          await engine.get(keys[i]!).catch((error: unknown) => {
            assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), String(error));
            damaged.push(i);
          });
        }
        assert.ok(damaged.length > 0, 'get sees the damaged block');
        const first = damaged[0]!;
        const corrupt = (error: unknown): boolean => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && /LevelDB range: .*Corruption/.test(error.message);
        // Pages that start before the damaged block and fill their limit after it: the old scan returned them without an error.
        await assert.rejects(engine.range({ gte: keys[first - 50]!, limit: 200 }), corrupt, 'forward, page filled past the block');
        await assert.rejects(engine.range({ lte: keys[first + 60]!, reverse: true, limit: 500 }), corrupt, 'reverse, page filled past the block');
        await assert.rejects(engine.range({ limit: 10_000 }), corrupt, 'unbounded, page filled');
        await assert.rejects(engine.range({ gte: keys[first - 50]!, lt: keys[first + 5]!, limit: 10_000 }), corrupt, 'range ending inside the block');
        // Clean pages elsewhere still read.
        assert.equal((await engine.range({ gte: keys[0]!, limit: 100 })).length, 100);
      } finally {
        await engine.close();
      }
    });
  });
});

async function withDir(name: string, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `impulse-leveldb-${name}-`));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes `count` keys (in small memtables, so they land in several tables) and closes; returns the keys in order. */
async function fill(dir: string, count: number): Promise<Buffer[]> {
  const engine = new LevelDbEngine({ dataDir: dir, writeBufferBytes: 64 * 1024, sync: 'none' });
  await engine.open();
  const keys: Buffer[] = [];
  for (let i = 0; i < count; i++) keys.push(Buffer.from(`key${String(i).padStart(6, '0')}`));
  for (let i = 0; i < count; i += 500) {
    await engine.batch(keys.slice(i, i + 500).map((key, j) => ({ type: 'put' as const, key, value: Buffer.from(`value-${i + j}-${'x'.repeat(50)}`) })));
  }
  await engine.close();
  return keys;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('leveldb getSync and its row cache', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('agrees with get and with a model while batches are in flight (a cached row never outlives a write of its key)', async () => {
    const create = (): LevelDbEngine => {
      const dir = mkdtempSync(join(tmpdir(), 'impulse-leveldb-getsync-'));
      dirs.push(dir);
      return new LevelDbEngine({ dataDir: dir });
    };
    // The settle steps hold both reads to the model once every write is acknowledged: a cached row never outlives a write.
    await checkGetSyncAgreesWithGet(create, { runs: 8, expect: { answered: true, declined: false }, shrink: false, writesOnAnotherThread: true });
  });

  it('answers a repeated read from the row cache, and not at all once it is off', async () => {
    for (const rowCacheBytes of [undefined, 0]) {
      const dir = await mkdtemp(join(tmpdir(), 'impulse-leveldb-rowcache-'));
      dirs.push(dir);
      const engine = new LevelDbEngine({ dataDir: dir, ...(rowCacheBytes !== undefined ? { rowCacheBytes } : {}) });
      await engine.open();
      try {
        await engine.put(Buffer.from('k'), Buffer.from('v1'));
        assert.deepEqual(engine.getSync(Buffer.from('k')), Buffer.from('v1'));
        assert.deepEqual(engine.getSync(Buffer.from('k')), Buffer.from('v1'));
        await engine.put(Buffer.from('k'), Buffer.from('v2'));
        assert.deepEqual(engine.getSync(Buffer.from('k')), Buffer.from('v2'));
        const figures = (await engine.stats()).figures;
        assert.equal(figures['row_cache_hits'], rowCacheBytes === 0 ? 0 : 1, JSON.stringify(figures));
      } finally {
        await engine.close();
      }
    }
  });
});

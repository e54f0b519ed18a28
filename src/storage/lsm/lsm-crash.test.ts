/**
 * The lsm engine against failures, on the crash-modelling MemVfs: crash at
 * every I/O point of a workload with flushes and compactions, I/O errors at
 * every point (once and persistent), and flipped bits in tables and WAL
 * records through the engine. Also: a model test with tiny memtables/tables
 * so every step crosses flushes and compactions, with `checkLevels()` after,
 * and range scans that stay consistent while compaction replaces files.
 *
 * Sweeps are sampled (deterministically from the seed) to keep this file
 * under a minute; LSM_CRASH_FULL=1 (or IMPULSE_CRASH_SWEEP=full) runs every point.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../../errors.js';
import { SeededRandom } from '../../util/random.js';
import { crashAtEveryIoPoint, ioErrorAtEveryPoint, readAllEntries, type KvHistory } from '../../../testkit/storage/kv-crash.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import type { Random } from '../../util/random.js';
import { LsmEngine, type LsmEngineOptions } from './lsm-engine.js';

const FULL = process.env['LSM_CRASH_FULL'] === '1';
const DIR = 'db';

/** Tiny sizes: a few dozen writes cross several flushes and compactions into level 2. */
function tinyEngine(vfs: MemVfs, extra: Partial<LsmEngineOptions> = {}): LsmEngine {
  return new LsmEngine({
    dataDir: DIR,
    vfs,
    memtableBytes: 1024,
    tableTargetBytes: 1024,
    blockBytes: 256,
    level0CompactionTrigger: 2,
    level0StopWritesTrigger: 4,
    level1TargetBytes: 2048,
    levelSizeMultiplier: 2,
    levelCount: 4,
    ...extra,
  });
}

async function workload(vfs: MemVfs, history: KvHistory, random: Random): Promise<void> {
  const engine = tinyEngine(vfs);
  await engine.open();
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < 70; i++) {
    const k = `key-${String(random.int(30)).padStart(3, '0')}`;
    const roll = random.int(10);
    // Some writes concurrently, so group commit puts several in one WAL record.
    let write: Promise<void>;
    if (roll < 6) write = history.put(engine, k, `value-${i}-${'x'.repeat(random.int(60))}`);
    else if (roll < 8) write = history.del(engine, k);
    else write = history.batch(engine, [
      { type: 'put', key: `${k}-a`, value: `batch-${i}` },
      { type: 'del', key: `key-${String(random.int(30)).padStart(3, '0')}` },
    ]);
    pending.push(write);
    if (random.int(3) === 0) {
      await Promise.all(pending.splice(0));
    }
  }
  await Promise.all(pending);
  await engine.close();
}

async function recoverContents(vfs: MemVfs): Promise<Array<[Buffer, Buffer]>> {
  const engine = tinyEngine(vfs);
  await engine.open();
  try {
    await engine.checkLevels();
    const entries = await readAllEntries(engine, 7);
    // Point reads agree with the scan.
    for (const [k, v] of entries) assert.deepEqual(await engine.get(k), v);
    return entries;
  } finally {
    await engine.close();
  }
}

describe('lsm crash safety', () => {
  it('the workload crosses flushes and compactions (the sweep below tests what it claims)', async () => {
    const vfs = new MemVfs();
    const engine = tinyEngine(vfs);
    await engine.open();
    const random = new SeededRandom(7);
    for (let i = 0; i < 70; i++) await engine.put(Buffer.from(`key-${String(random.int(30)).padStart(3, '0')}`), Buffer.alloc(40, i));
    await engine.waitForBackgroundIdle();
    const figures = (await engine.stats()).figures;
    assert.ok(figures['flushes']! >= 3, `flushes ${figures['flushes']}`);
    assert.ok(figures['compactions']! + figures['compaction_trivial_moves']! >= 1, `compactions ${figures['compactions']}`);
    await engine.checkLevels();
    await engine.close();
  });

  it('keeps every acknowledged write and invents none, crashing at every I/O point', async (t) => {
    const summary = await crashAtEveryIoPoint({
      seed: 11,
      ...(FULL ? {} : { maxPoints: 100 }),
      // 'reorder': any subset of unsynced writes survives; and recovery (which deletes orphans,
      // starts a segment and flushes the replayed memtable) is itself crashed once per point.
      modes: ['lose-unsynced', 'torn', 'reorder'],
      crashDuringRecovery: true,
      workload: (vfs, history, context) => workload(vfs, history, context.random),
      recover: (vfs) => recoverContents(vfs),
    });
    t.diagnostic(`${summary.ioOperations} I/O operations; ${summary.points} crash points; ${summary.checks} recoveries checked`);
    assert.ok(summary.ioOperations > 150, `workload does ${summary.ioOperations} I/O operations`);
    assert.equal(summary.failures.length, 0);
  });

  it('surfaces an I/O error at every point (once and persistent), stays consistent and loses nothing acknowledged', async (t) => {
    const summary = await ioErrorAtEveryPoint({
      seed: 5,
      ...(FULL ? {} : { maxPoints: 50 }),
      workload: async (vfs, history, context) => {
        try {
          await workload(vfs, history, context.random);
        } catch (error) {
          if (!isImpulseError(error)) throw error;
          history.sawError();
        }
      },
      recover: (vfs) => recoverContents(vfs),
      // Deleting obsolete files and closing read handles are cleanup: a failure leaves an orphan the next open removes.
      mayAbsorb: (operation) => operation.operation === 'unlink' || operation.operation === 'file.close',
    });
    t.diagnostic(`${summary.ioOperations} I/O operations; ${summary.points} error points; ${summary.checks} recoveries checked`);
    assert.equal(summary.failures.length, 0);
  });
});

describe('lsm read-only after an I/O error', () => {
  it('refuses writes after a WAL append fails with EIO, keeps serving reads, says read-only, and recovers everything acknowledged on reopen', async () => {
    const vfs = new MemVfs();
    const engine = tinyEngine(vfs, { memtableBytes: 1 << 20 });
    await engine.open();
    for (let i = 0; i < 10; i++) await engine.put(Buffer.from(`k${i}`), Buffer.from(`v${i}`));
    vfs.inject({ kind: 'error', at: vfs.ioCount }); // the next operation: the WAL write of the next put
    await assert.rejects(engine.put(Buffer.from('k-lost'), Buffer.from('x')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
    // The disk works again, but an I/O error (not a full disk) on a write is not retried: the engine stays read-only.
    await assert.rejects(engine.put(Buffer.from('k-after'), Buffer.from('y')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_READ_ONLY') && /reopened/.test((error as Error).message));
    assert.deepEqual(await engine.get(Buffer.from('k3')), Buffer.from('v3'));
    assert.equal(await engine.get(Buffer.from('k-lost')), undefined);
    assert.equal(engine.health().state, 'read-only');
    assert.equal(engine.health().code, 'IMPULSE_ERR_ENGINE_IO');
    assert.equal((await engine.stats()).figures['health_state'], 2);
    await assert.rejects(engine.close(), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_READ_ONLY'));
    const reopened = tinyEngine(vfs.recover('lose-unsynced'));
    await reopened.open();
    for (let i = 0; i < 10; i++) assert.deepEqual(await reopened.get(Buffer.from(`k${i}`)), Buffer.from(`v${i}`));
    await reopened.put(Buffer.from('k-new'), Buffer.from('z'));
    await reopened.checkLevels();
    await reopened.close();
  });
});

describe('lsm corruption through the engine', () => {
  async function populated(): Promise<MemVfs> {
    const vfs = new MemVfs();
    const engine = tinyEngine(vfs, { level0CompactionTrigger: 8, level0StopWritesTrigger: 12 });
    await engine.open();
    for (let i = 0; i < 40; i++) await engine.put(Buffer.from(`key-${String(i).padStart(3, '0')}`), Buffer.alloc(50, i));
    await engine.close();
    return vfs;
  }

  async function readEverything(vfs: MemVfs): Promise<void> {
    const engine = tinyEngine(vfs, { level0CompactionTrigger: 8, level0StopWritesTrigger: 12 });
    await engine.open();
    try {
      await readAllEntries(engine, 5);
      for (let i = 0; i < 40; i++) {
        const value = await engine.get(Buffer.from(`key-${String(i).padStart(3, '0')}`));
        assert.deepEqual(value, Buffer.alloc(50, i), `key ${i} read back wrong instead of reporting corruption`);
      }
    } finally {
      await engine.close().catch(() => undefined);
    }
  }

  it('a flipped bit in any table block or WAL segment is IMPULSE_ERR_ENGINE_CORRUPTION naming the file, never wrong data', async () => {
    const clean = await populated();
    const files = clean.fileNames().filter((name) => name.endsWith('.sst') || name.endsWith('.log'));
    assert.ok(files.some((name) => name.endsWith('.sst')) && files.some((name) => name.endsWith('.log')), files.join(','));
    const random = new SeededRandom(9);
    let checked = 0;
    for (const file of files) {
      const size = await clean.size(file);
      if (size === 0) continue;
      const step = FULL ? 1 : Math.max(1, Math.floor(size / 12));
      for (let offset = 0; offset < size; offset += step) {
        const vfs = await populated();
        vfs.flipBit(file, offset, random.int(8));
        try {
          await readEverything(vfs);
          // Opened and read back exactly: only a flip in a segment's unused space right after its last
          // record may do that (it looks like a torn header and holds nothing); wal.test.ts checks every offset.
          assert.ok(file.endsWith('.log'), `${file} offset ${offset}: the flipped bit went unnoticed`);
        } catch (error) {
          assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), `${file} offset ${offset}: ${String(error)}`);
          assert.ok((error as Error).message.includes(file.split('/').pop()!), `message names ${file}: ${(error as Error).message}`);
          checked++;
        }
      }
    }
    assert.ok(checked > 20);
  });
});

describe('lsm against a model, across flushes and compactions', () => {
  it('matches a sorted map after random puts, deletes and batches; checkLevels passes; reopen keeps it', async () => {
    const vfs = new MemVfs();
    let engine = tinyEngine(vfs);
    await engine.open();
    const model = new Map<string, Buffer>();
    const random = new SeededRandom(21);
    for (let step = 0; step < 1500; step++) {
      const k = `k${String(random.int(200)).padStart(4, '0')}`;
      const roll = random.int(10);
      if (roll < 6) {
        const value = Buffer.alloc(random.int(40), step % 256);
        await engine.put(Buffer.from(k), value);
        model.set(k, value);
      } else if (roll < 9) {
        await engine.del(Buffer.from(k));
        model.delete(k);
      } else {
        const scanFrom = `k${String(random.int(200)).padStart(4, '0')}`;
        const reverse = random.chance(0.5);
        const limit = 1 + random.int(30);
        const got = await engine.range(reverse ? { lte: Buffer.from(scanFrom), reverse, limit } : { gte: Buffer.from(scanFrom), limit });
        const expected = [...model.keys()].sort().filter((key) => (reverse ? key <= scanFrom : key >= scanFrom));
        if (reverse) expected.reverse();
        assert.deepEqual(got.map((entry) => entry.key.toString()), expected.slice(0, limit), `scan at step ${step}`);
      }
      if (step % 500 === 250) {
        await engine.checkLevels();
        await engine.close();
        engine = tinyEngine(vfs);
        await engine.open();
      }
    }
    await engine.checkLevels();
    const all = await readAllEntries(engine, 50);
    assert.deepEqual(all.map(([key, value]) => `${key.toString()}=${value.toString('hex')}`), [...model.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, value]) => `${key}=${value.toString('hex')}`));
    const figures = (await engine.stats()).figures;
    assert.ok(figures['compactions']! > 3, `compactions: ${figures['compactions']}`);
    assert.ok(figures['level_1_tables']! + figures['level_2_tables']! + figures['level_3_tables']! > 0);
    await engine.close();
  });

  it('a range scan sees one consistent snapshot while writes, flushes and compactions run underneath', async () => {
    const vfs = new MemVfs();
    const engine = tinyEngine(vfs, { blockCacheBytes: 1 }); // no cache: every block read awaits, so work interleaves
    await engine.open();
    const keys = 120;
    for (let i = 0; i < keys; i++) await engine.put(Buffer.from(`k${String(i).padStart(4, '0')}`), Buffer.from('old'));
    await engine.waitForBackgroundIdle();
    // Start the scan, then overwrite everything while it runs.
    const scan = engine.range({ limit: 1000 });
    const writes: Array<Promise<void>> = [];
    for (let i = 0; i < keys; i++) writes.push(engine.put(Buffer.from(`k${String(i).padStart(4, '0')}`), Buffer.from('new')));
    for (let i = 0; i < keys; i += 3) writes.push(engine.del(Buffer.from(`k${String(i).padStart(4, '0')}`)));
    const [entries] = await Promise.all([scan, Promise.all(writes)]);
    assert.equal(entries.length, keys);
    assert.ok(entries.every((entry) => entry.value.toString() === 'old'), 'the scan saw writes made after it started');
    await engine.waitForBackgroundIdle();
    await engine.checkLevels();
    const after = await engine.range({ limit: 1000 });
    assert.equal(after.length, keys - Math.ceil(keys / 3));
    assert.ok(after.every((entry) => entry.value.toString() === 'new'));
    // Files replaced while the scan ran are gone now that no reader holds them.
    const stats = await engine.stats();
    const liveTables = Object.entries(stats.figures).filter(([name]) => /^level_\d+_tables$/.test(name)).reduce((sum, [, n]) => sum + n, 0);
    assert.equal(vfs.fileNames().filter((name) => name.endsWith('.sst')).length, liveTables);
    await engine.close();
  });

  it('stalls writes rather than letting level 0 grow without bound, and counts the stalls', async () => {
    const vfs = new MemVfs();
    const engine = tinyEngine(vfs, { level0CompactionTrigger: 2, level0StopWritesTrigger: 2, immutableMemtablesMax: 1 });
    await engine.open();
    let level0Max = 0;
    for (let i = 0; i < 400; i++) {
      await engine.put(Buffer.from(`k${String((i * 37) % 97).padStart(4, '0')}`), Buffer.alloc(64, i));
      level0Max = Math.max(level0Max, (await engine.stats()).figures['level_0_tables']!);
    }
    const figures = (await engine.stats()).figures;
    assert.ok(figures['write_stalls']! > 0, `stalls ${figures['write_stalls']}`);
    assert.ok(level0Max <= 2, `level 0 reached ${level0Max} tables`);
    await engine.checkLevels();
    await engine.close();
  });
});

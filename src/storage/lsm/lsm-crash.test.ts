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
import { KvHistory, checkRecoveredKv, collectContents, crashAtEveryIoPoint, ioErrorAtEveryPoint, readAllEntries } from '../../../testkit/storage/kv-crash.js';
import { type SweepSummary, sweepCrashPoints } from '../../../testkit/vfs/crash-harness.js';
import { type IoOperation, MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import { dirName } from '../../vfs/vfs.js';
import type { Random } from '../../util/random.js';
import { LsmEngine, type LsmEngineOptions } from './lsm-engine.js';
import { TINY_TUNING } from './tiny-tuning.js';

const FULL = process.env['LSM_CRASH_FULL'] === '1';
const DIR = 'db';

/** Tiny sizes: a few dozen writes cross several flushes and compactions into level 2. */
function tinyEngine(vfs: MemVfs, extra: Partial<LsmEngineOptions> = {}): LsmEngine {
  return new LsmEngine({
    dataDir: DIR,
    vfs,
    ...TINY_TUNING,
    ...extra,
  });
}

async function workload(vfs: MemVfs, history: KvHistory, random: Random, extra: Partial<LsmEngineOptions> = {}): Promise<void> {
  const engine = tinyEngine(vfs, extra);
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
      // 'reorder': any subset of unsynced writes survives; 'reorder-dirs' also any subset of unsynced
      // directory changes to different names (drawn more often below); and recovery (which deletes
      // orphans, starts a segment and flushes the replayed memtable) is itself crashed once per point.
      modes: ['lose-unsynced', 'torn', 'reorder', 'reorder-dirs'],
      crashDuringRecovery: true,
      workload: (vfs, history, context) => workload(vfs, history, context.random),
      recover: (vfs) => recoverContents(vfs),
    });
    t.diagnostic(`${summary.ioOperations} I/O operations; ${summary.points} crash points; ${summary.checks} recoveries checked`);
    assert.ok(summary.ioOperations > 150, `workload does ${summary.ioOperations} I/O operations`);
    assert.equal(summary.failures.length, 0);
  });

  it('with sync off: a process crash at every point keeps every acknowledged write; a power loss opens (never refused) with no phantom and whole batches', async (t) => {
    const syncOff = { sync: 'none' } as const;
    const processCrash = await crashAtEveryIoPoint({
      seed: 13,
      ...(FULL ? {} : { maxPoints: 60 }),
      modes: ['keep-unsynced'],
      workload: (vfs, history, context) => workload(vfs, history, context.random, syncOff),
      recover: (vfs) => recoverContents(vfs),
    });
    // Power loss with sync off promises nothing about acknowledged writes: every write counts as unknown.
    const powerLoss = await sweepCrashPoints<KvHistory>({
      seed: 14,
      ...(FULL ? {} : { maxPoints: 60 }),
      modes: ['lose-unsynced', 'torn', 'reorder'],
      newRecord: () => new KvHistory(),
      workload: (vfs, history, context) => workload(vfs, history, context.random, syncOff),
      verify: async (recovered, history) => {
        for (const write of history.writes) write.status = 'failed';
        const contents = await collectContents(await recoverContents(recovered));
        return checkRecoveredKv(history, contents).slice(0, 3).join('; ') || undefined;
      },
    });
    t.diagnostic(`${processCrash.checks} process-crash and ${powerLoss.checks} power-loss recoveries checked`);
    assert.equal(processCrash.failures.length + powerLoss.failures.length, 0);
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
    assert.ok(figures['level1_files']! + figures['level2_files']! + figures['level3_files']! > 0);
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
    const liveTables = Object.entries(stats.figures).filter(([name]) => /^level\d+_files$/.test(name)).reduce((sum, [, n]) => sum + n, 0);
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
      level0Max = Math.max(level0Max, (await engine.stats()).figures['level0_files']!);
    }
    const figures = (await engine.stats()).figures;
    assert.ok(figures['write_stalls']! > 0, `stalls ${figures['write_stalls']}`);
    assert.ok(level0Max <= 2, `level 0 reached ${level0Max} tables`);
    await engine.checkLevels();
    await engine.close();
  });
});

/**
 * Violations of "a rename that replaces a file (MANIFEST.tmp over MANIFEST) is
 * durable, its directory synced, before any later unlink in that directory":
 * what is unlinked after a replace is what the old contents referred to (the
 * tables and segments the old manifest listed). MemVfs's crash modes keep
 * unsynced directory changes only as an in-order prefix, so a crash there can
 * never keep a later unlink while losing an earlier rename; a real file
 * system may. This trace check finds that ordering bug without such a crash
 * mode. (A rename to a fresh name, like a new WAL segment's, supersedes nothing.)
 */
function replacesDurableBeforeUnlinks(operations: readonly IoOperation[]): string[] {
  const seen = new Set<string>();
  const pendingReplace = new Map<string, IoOperation>();
  const violations: string[] = [];
  for (const op of operations) {
    if (op.operation === 'rename') {
      const target = op.path.split(' -> ')[1]!;
      if (seen.has(target) && !pendingReplace.has(dirName(target))) pendingReplace.set(dirName(target), op);
      seen.add(target);
    } else if (op.operation === 'syncDir') {
      pendingReplace.delete(op.path);
    } else if (op.operation === 'unlink') {
      const rename = pendingReplace.get(dirName(op.path));
      if (rename !== undefined) violations.push(`unlink ${op.path} (op ${op.index}) while the rename ${rename.path} (op ${rename.index}) is not durable`);
    } else {
      seen.add(op.path);
    }
  }
  return violations;
}

describe('lsm directory operations in a durable order (trace check)', () => {
  async function trace(extra: Partial<LsmEngineOptions>): Promise<string[]> {
    const vfs = new MemVfs({ recordOperations: true });
    await workload(vfs, new KvHistory(), new SeededRandom(11), extra);
    // Reopen: recovery replays the log, flushes and deletes segments too.
    await workload(vfs, new KvHistory(), new SeededRandom(12), extra);
    assert.ok(vfs.operations.some((op) => op.operation === 'unlink'), 'the workload deletes obsolete files');
    return replacesDurableBeforeUnlinks(vfs.operations);
  }

  it('every replacing rename (MANIFEST) is made durable before any later unlink in its directory', async () => {
    assert.deepEqual(await trace({}), []);
  });

  it('catches the planted bug: no directory sync after the MANIFEST rename', async () => {
    const violations = await trace({ mutations: { skipManifestDirSync: true } });
    assert.ok(violations.some((violation) => violation.includes('MANIFEST')), violations.join('\n'));
  });
});

describe("lsm directory changes reordered by a crash ('reorder-dirs')", () => {
  /** Unsynced directory changes to different names survive in any combination, drawn 4 times a point. */
  function reorderDirsSweep(extra: Partial<LsmEngineOptions> = {}): Promise<SweepSummary> {
    return crashAtEveryIoPoint({
      seed: 11,
      ...(FULL ? {} : { maxPoints: 100 }),
      modes: ['reorder-dirs'],
      drawsPerPoint: 4,
      workload: (vfs, history, context) => workload(vfs, history, context.random, extra),
      recover: (vfs) => recoverContents(vfs),
    });
  }

  it('keeps every acknowledged write and invents none: each name is durable before anything that depends on it', async (t) => {
    const summary = await reorderDirsSweep();
    t.diagnostic(`${summary.points} crash points; ${summary.checks} recoveries checked`);
    assert.equal(summary.failures.length, 0);
  });

  for (const planted of ['skipTableDirSync', 'skipManifestDirSync'] as const) {
    it(`catches the planted bug ${planted}`, async () => {
      await assert.rejects(reorderDirsSweep({ mutations: { [planted]: true } }), /recovery mode 'reorder-dirs'.*(missing|not found|ENOENT)/s);
    });
  }
});

describe('lsm WAL damage through the engine', () => {
  /** A store whose newest segment holds 12 acknowledged records (sync on), left as a crash leaves it. */
  async function crashedStore(): Promise<{ vfs: MemVfs; segment: string }> {
    const vfs = new MemVfs();
    const engine = tinyEngine(vfs, { memtableBytes: 1 << 20 });
    await engine.open();
    for (let i = 0; i < 12; i++) await engine.put(Buffer.from(`k${String(i).padStart(2, '0')}`), Buffer.alloc(30, i));
    const segment = vfs.fileNames().filter((name) => name.endsWith('.log')).at(-1)!;
    return { vfs: vfs.recover('lose-unsynced'), segment };
  }

  async function keysAfterOpen(vfs: MemVfs, extra: Partial<LsmEngineOptions> = {}): Promise<{ keys: string[]; engine: LsmEngine }> {
    const engine = tinyEngine(vfs, { memtableBytes: 1 << 20, ...extra });
    await engine.open();
    const keys = (await readAllEntries(engine, 50)).map(([key]) => key.toString());
    return { keys, engine };
  }

  it('a damaged record with acknowledged records after it refuses to open; point-in-time opens, reports and keeps the segment; the next default open works', async () => {
    const { vfs, segment } = await crashedStore();
    const data = await vfs.readFile(segment);
    // Damage the 6th record's payload and trailer (records are ~60 bytes after a ~30-byte header).
    vfs.flipBit(segment, 300, 1);
    vfs.flipBit(segment, 330, 6);
    await assert.rejects(keysAfterOpen(vfs), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && (error as Error).message.includes(segment.split('/')[1]!));
    // The planted bug (damage taken for a torn tail) would have opened without a word and lost the records after it.
    const planted = await keysAfterOpen(vfs.recover('keep-unsynced'), { mutations: { walDamageAsTornTail: true } });
    assert.ok(planted.keys.length < 12 && planted.engine.recoveryReport?.dataLost === false);
    await planted.engine.close();
    const { keys, engine } = await keysAfterOpen(vfs, { walRecovery: 'point-in-time' });
    assert.ok(keys.length < 12 && keys.length >= 3, keys.join(','));
    const report = engine.recoveryReport!;
    assert.equal(report.dataLost, true);
    assert.match(report.summary, /point-in-time/);
    assert.match(report.summary, /after-damage/);
    assert.ok((await engine.stats()).figures['wal_recovery_discarded_records']! > 0);
    await engine.close();
    assert.ok(vfs.fileNames().includes(`${segment}.discarded`), vfs.fileNames().join(','));
    assert.equal((await vfs.readFile(`${segment}.discarded`)).length, data.length, 'kept whole for the operator');
    const again = await keysAfterOpen(vfs);
    assert.deepEqual(again.keys, keys);
    await again.engine.close();
  });

  it('a WAL segment cut to any length (to nothing, too) refuses to open, naming it', async () => {
    const { vfs, segment } = await crashedStore();
    for (const length of [0, 10, 200, 500]) {
      const cut = vfs.recover('keep-unsynced');
      const file = await cut.open(segment);
      await file.truncate(length);
      await file.sync();
      await file.close();
      await assert.rejects(keysAfterOpen(cut), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && (error as Error).message.includes(segment.split('/')[1]!), `cut to ${length}`);
    }
  });

  it('a missing MANIFEST with tables and segments present refuses to start, naming it, and changes nothing on disk', async () => {
    const { vfs } = await crashedStore();
    const engine = tinyEngine(vfs);
    await engine.open();
    for (let i = 0; i < 40; i++) await engine.put(Buffer.from(`m${i}`), Buffer.alloc(40, i));
    await engine.close();
    await vfs.unlink(`${DIR}/MANIFEST`);
    const before = vfs.fileNames();
    await assert.rejects(tinyEngine(vfs).open(), (error: unknown) => {
      assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), String(error));
      assert.match((error as Error).message, /MANIFEST is missing/);
      assert.equal((error as { details: Record<string, unknown> }).details['missing'], 'MANIFEST');
      return true;
    });
    assert.deepEqual(vfs.fileNames(), before);
  });
});

/**
 * The lsm engine under transient and fatal errors (health.ts): a full disk
 * and a full file table degrade it and it resumes on its own; a failed WAL
 * fsync, an I/O error on a write, an uncertain manifest make it read-only;
 * corruption found by a compaction makes it failed. `/health` material
 * (`engine.health()`) says which, with the reason.
 *
 * Faults come from `ErrnoVfs`, a MemVfs wrapper that fails chosen operations
 * with a chosen errno (MemVfs injects only EIO) and, like a real short write
 * on a full disk, lets the first half of a failing write reach the file.
 * Background retries run on a manual clock.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ErrorCode, ImpulseError, isImpulseError } from '../../errors.js';
import { AssertionError } from '../../util/assert.js';
import type { Clock, TimerHandle } from '../../util/clock.js';
import { SeededRandom } from '../../util/random.js';
import { errnoError, vfsError, type Vfs, type VfsFile, type VfsOpenOptions } from '../../vfs/vfs.js';
import { KvHistory, checkRecoveredKv, collectContents, readAllEntries } from '../../../testkit/storage/kv-crash.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import { isDamageOrBug, transientCode } from './health.js';
import { deserializeError, serializeError } from './job-runner.js';
import { LsmEngine, type LsmEngineOptions } from './lsm-engine.js';
import { TINY_TUNING } from './tiny-tuning.js';

const DIR = 'db';

interface Operation {
  readonly index: number;
  readonly operation: string;
  readonly path: string;
}

/** A Vfs over a MemVfs that fails the operations `failWith` picks with that errno (a failing write first writes half its bytes). */
class ErrnoVfs implements Vfs {
  readonly name = 'errno(mem)';
  operations = 0;
  /** Errno to fail `operation` with, or undefined to let it through. */
  failWith: (operation: Operation) => string | undefined = () => undefined;

  constructor(readonly inner: MemVfs) {}

  check(operation: string, path: string): void {
    const errno = this.failWith({ index: this.operations++, operation, path });
    if (errno !== undefined) throw vfsError(operation, path, errnoError(errno, `injected ${errno}`));
  }

  async open(path: string, options?: VfsOpenOptions): Promise<VfsFile> {
    this.check('open', path);
    return new ErrnoFile(this, await this.inner.open(path, options));
  }
  async readFile(path: string): Promise<Buffer> {
    this.check('readFile', path);
    return this.inner.readFile(path);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check('rename', `${from} -> ${to}`);
    return this.inner.rename(from, to);
  }
  async unlink(path: string): Promise<void> {
    this.check('unlink', path);
    return this.inner.unlink(path);
  }
  async list(dir: string): Promise<string[]> {
    this.check('list', dir);
    return this.inner.list(dir);
  }
  async mkdir(dir: string): Promise<void> {
    return this.inner.mkdir(dir);
  }
  async syncDir(dir: string): Promise<void> {
    this.check('syncDir', dir);
    return this.inner.syncDir(dir);
  }
  async exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }
  async size(path: string): Promise<number> {
    return this.inner.size(path);
  }
}

class ErrnoFile implements VfsFile {
  constructor(
    private readonly vfs: ErrnoVfs,
    private readonly file: VfsFile,
  ) {}
  get path(): string {
    return this.file.path;
  }
  async read(position: number, length: number): Promise<Buffer> {
    this.vfs.check('file.read', this.path);
    return this.file.read(position, length);
  }
  async write(position: number, data: Uint8Array): Promise<void> {
    try {
      this.vfs.check('file.write', this.path);
    } catch (error) {
      await this.file.write(position, data.subarray(0, data.length >> 1)); // a short write, then the error
      throw error;
    }
    return this.file.write(position, data);
  }
  async size(): Promise<number> {
    return this.file.size();
  }
  async truncate(length: number): Promise<void> {
    this.vfs.check('file.truncate', this.path);
    return this.file.truncate(length);
  }
  async sync(): Promise<void> {
    this.vfs.check('file.sync', this.path);
    return this.file.sync();
  }
  async close(): Promise<void> {
    return this.file.close();
  }
}

/** Timers that fire only when the test says so. */
class ManualClock implements Clock {
  private timeMs = 0;
  private timers: Array<{ atMs: number; callback: () => void; cancelled: boolean }> = [];
  now(): number {
    return this.timeMs;
  }
  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer = { atMs: this.timeMs + delayMs, callback, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }
  get pending(): number {
    return this.timers.filter((timer) => !timer.cancelled).length;
  }
  /** Advances past every pending timer and fires them. */
  fireAll(): void {
    const due = this.timers.filter((timer) => !timer.cancelled);
    this.timers = [];
    for (const timer of due) {
      this.timeMs = Math.max(this.timeMs, timer.atMs);
      timer.callback();
    }
  }
}

function engineOn(vfs: Vfs, clock: Clock, extra: Partial<LsmEngineOptions> = {}): LsmEngine {
  return new LsmEngine({
    dataDir: DIR,
    vfs,
    clock,
    ...TINY_TUNING,
    ...extra,
  });
}

const rejectsWith = (code: ErrorCode) => (error: unknown) => {
  assert.ok(isImpulseError(error, code), `expected ${code}, got ${String(error)}`);
  return true;
};

const key = (i: number): string => `key-${String(i).padStart(4, '0')}`;

/** Every acknowledged write of `history` is in `engine`, nothing invented, batches whole. */
async function assertHolds(engine: LsmEngine, history: KvHistory): Promise<void> {
  const contents = await collectContents(await readAllEntries(engine, 97));
  assert.deepEqual(checkRecoveredKv(history, contents), []);
}

describe('lsm transient errors: degraded, then back to ok on its own', () => {
  it('a full disk on WAL appends: NO_SPACE (507) to the writer, DELETE attempted too; the next write after space returns succeeds; nothing acknowledged lost, also after reopen', async () => {
    const memory = new MemVfs();
    const vfs = new ErrnoVfs(memory);
    const clock = new ManualClock();
    const engine = engineOn(vfs, clock, { memtableBytes: 1 << 20 });
    await engine.open();
    const history = new KvHistory();
    for (let i = 0; i < 20; i++) await history.put(engine, key(i), `v${i}`);
    let full = true;
    vfs.failWith = (op) => (full && op.operation === 'file.write' && op.path.endsWith('.log') ? 'ENOSPC' : undefined);
    await assert.rejects(history.put(engine, key(100), 'lost?'), rejectsWith('IMPULSE_ERR_ENGINE_NO_SPACE'));
    await assert.rejects(history.del(engine, key(3)), rejectsWith('IMPULSE_ERR_ENGINE_NO_SPACE'));
    assert.equal(engine.health().state, 'degraded');
    assert.equal(engine.health().code, 'IMPULSE_ERR_ENGINE_NO_SPACE');
    assert.match(engine.health().reason!, /ENOSPC/);
    assert.deepEqual(await engine.get(Buffer.from(key(5))), Buffer.from('v5'));
    full = false;
    await history.del(engine, key(3));
    await history.put(engine, key(101), 'after');
    assert.deepEqual(engine.health(), { state: 'ok' });
    await assertHolds(engine, history);
    await engine.close();
    // The failed appends left half-records behind; the segment that followed says where the log continues.
    const reopened = engineOn(memory.recover('lose-unsynced'), clock);
    await reopened.open();
    assert.equal(reopened.recoveryReport?.dataLost, false);
    await assertHolds(reopened, history);
    await reopened.checkLevels();
    await reopened.close();
  });

  it('a full disk after writes made without sync: the next synced write, in the segment that follows, makes them durable too (the write contract), so a power loss keeps them and open refuses nothing', async () => {
    const memory = new MemVfs();
    const vfs = new ErrnoVfs(memory);
    const clock = new ManualClock();
    const engine = engineOn(vfs, clock, { memtableBytes: 1 << 20 });
    await engine.open();
    const put = (i: number, sync: boolean): Promise<void> => engine.batch([{ type: 'put', key: Buffer.from(key(i)), value: Buffer.from(`v${i}`) }], { sync });
    for (let i = 0; i < 5; i++) await put(i, true);
    for (let i = 5; i < 10; i++) await put(i, false);
    let full = true;
    vfs.failWith = (op) => (full && op.operation === 'file.write' && op.path.endsWith('.log') ? 'ENOSPC' : undefined);
    await assert.rejects(put(100, true), rejectsWith('IMPULSE_ERR_ENGINE_NO_SPACE'));
    full = false;
    await put(10, true);
    await engine.close();
    const reopened = engineOn(memory.recover('lose-unsynced'), clock);
    await reopened.open();
    for (let i = 0; i <= 10; i++) assert.deepEqual(await reopened.get(Buffer.from(key(i))), Buffer.from(`v${i}`), `${key(i)} after the power loss`);
    assert.equal(await reopened.get(Buffer.from(key(100))), undefined);
    assert.equal(reopened.recoveryReport?.dataLost, false);
    await reopened.close();
  });

  it('out of file descriptors when a new WAL segment is due: TOO_MANY_FILES (503); resumes when descriptors return', async () => {
    const vfs = new ErrnoVfs(new MemVfs());
    const engine = engineOn(vfs, new ManualClock());
    await engine.open();
    const history = new KvHistory();
    let limited = false;
    vfs.failWith = (op) => (limited && op.operation === 'open' ? 'EMFILE' : undefined);
    let refused = 0;
    for (let i = 0; i < 60; i++) {
      if (i === 10) limited = true;
      if (i === 40) limited = false;
      try {
        await history.put(engine, key(i), 'x'.repeat(60));
      } catch (error) {
        assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_TOO_MANY_FILES'), String(error));
        if (refused++ === 0) assert.equal(engine.health().state, 'degraded');
      }
    }
    assert.ok(refused > 0, 'the memtable filled while descriptors were short');
    await engine.waitForBackgroundIdle();
    assert.deepEqual(engine.health(), { state: 'ok' });
    await assertHolds(engine, history);
    await engine.checkLevels();
    await engine.close();
  });

  it('a full disk during flush and compaction: degraded, retried on the clock, stalled writers fail fast instead of hanging, then it catches up with nothing lost and no orphan files', async () => {
    const memory = new MemVfs();
    const vfs = new ErrnoVfs(memory);
    const clock = new ManualClock();
    const engine = engineOn(vfs, clock, { immutableMemtablesMax: 1 });
    await engine.open();
    const history = new KvHistory();
    let full = false;
    vfs.failWith = (op) => (full && op.path.endsWith('.sst') && (op.operation === 'file.write' || op.operation === 'open') ? 'ENOSPC' : undefined);
    let refused = 0;
    for (let i = 0; i < 120; i++) {
      if (i === 10) full = true;
      try {
        await history.put(engine, key(i % 50), `value-${i}-${'y'.repeat(40)}`);
      } catch (error) {
        assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_NO_SPACE'), String(error));
        refused++;
      }
    }
    assert.ok(refused > 0, 'writes stalled on flushes that could not run');
    assert.equal(engine.health().state, 'degraded');
    assert.ok(clock.pending > 0, 'a retry is scheduled');
    clock.fireAll(); // a retry while the disk is still full fails again and reschedules
    await engine.waitForBackgroundIdle();
    assert.equal(engine.health().state, 'degraded');
    full = false;
    for (let round = 0; round < 10 && clock.pending > 0; round++) {
      clock.fireAll();
      await engine.waitForBackgroundIdle();
    }
    assert.deepEqual(engine.health(), { state: 'ok' });
    for (let i = 0; i < 20; i++) await history.put(engine, key(i), `later-${i}`);
    await engine.waitForBackgroundIdle();
    await assertHolds(engine, history);
    await engine.checkLevels();
    const stats = await engine.stats();
    const liveTables = Object.entries(stats.figures).filter(([name]) => /^level\d+_files$/.test(name)).reduce((sum, [, n]) => sum + n, 0);
    assert.equal(memory.fileNames().filter((name) => name.endsWith('.sst')).length, liveTables, 'failed outputs were deleted');
    await engine.close();
  });

  it('a full disk at any I/O point of a workload, for a while: afterwards the same engine (not reopened) is ok again and holds every acknowledged write', async () => {
    const random = new SeededRandom(31);
    let points = 0;
    for (let start = 20; start < 400; start += 7 + random.int(9)) {
      const memory = new MemVfs();
      const vfs = new ErrnoVfs(memory);
      const clock = new ManualClock();
      const engine = engineOn(vfs, clock);
      await engine.open();
      const history = new KvHistory();
      const duration = 1 + random.int(12);
      // Not where a failure is fatal by design (a WAL fsync, the manifest rename and directory syncs: read-only, tested below).
      const fatal = (op: Operation): boolean => op.operation === 'rename' || op.operation === 'syncDir' || (op.operation === 'file.sync' && op.path.endsWith('.log'));
      vfs.failWith = (op) => (op.index >= start && op.index < start + duration && !fatal(op) ? 'ENOSPC' : undefined);
      for (let i = 0; i < 80; i++) {
        const k = key(random.int(40));
        const write = random.int(6) === 0 ? history.del(engine, k) : history.put(engine, k, `v${i}-${'z'.repeat(random.int(50))}`);
        await write.catch((error: unknown) => assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_NO_SPACE'), `point ${start}: ${String(error)}`));
        if (clock.pending > 0 && random.int(3) === 0) clock.fireAll();
      }
      vfs.failWith = () => undefined;
      for (let round = 0; round < 10 && clock.pending > 0; round++) {
        clock.fireAll();
        await engine.waitForBackgroundIdle();
      }
      await history.put(engine, 'final', 'write');
      await engine.waitForBackgroundIdle();
      assert.deepEqual(engine.health(), { state: 'ok' }, `point ${start}`);
      await assertHolds(engine, history);
      await engine.checkLevels();
      await engine.close();
      const reopened = engineOn(memory.recover('lose-unsynced'), clock);
      await reopened.open();
      await assertHolds(reopened, history);
      await reopened.close();
      points++;
    }
    assert.ok(points > 20);
  });
});

describe('lsm errors that stop writes until reopen', () => {
  it('a failed WAL fsync makes it read-only, even with a "transient" errno: after a failed fsync the page cache cannot be trusted', async () => {
    const vfs = new ErrnoVfs(new MemVfs());
    const engine = engineOn(vfs, new ManualClock());
    await engine.open();
    await engine.put(Buffer.from('a'), Buffer.from('1'));
    vfs.failWith = (op) => (op.operation === 'file.sync' && op.path.endsWith('.log') ? 'ENOSPC' : undefined);
    await assert.rejects(engine.put(Buffer.from('b'), Buffer.from('2')), rejectsWith('IMPULSE_ERR_ENGINE_IO'));
    vfs.failWith = () => undefined;
    await assert.rejects(engine.put(Buffer.from('c'), Buffer.from('3')), rejectsWith('IMPULSE_ERR_ENGINE_READ_ONLY'));
    await assert.rejects(engine.del(Buffer.from('a')), rejectsWith('IMPULSE_ERR_ENGINE_READ_ONLY'));
    assert.equal(engine.health().state, 'read-only');
    assert.match(engine.health().reason!, /syncing the WAL/);
    assert.deepEqual(await engine.get(Buffer.from('a')), Buffer.from('1'));
    await assert.rejects(engine.close(), rejectsWith('IMPULSE_ERR_ENGINE_READ_ONLY'));
  });

  it('corruption found by a compaction makes it failed; reads of intact data still work', async () => {
    const memory = new MemVfs();
    const clock = new ManualClock();
    const setup = engineOn(memory, clock, { level0CompactionTrigger: 8, level0StopWritesTrigger: 12 });
    await setup.open();
    // Keys out of order, so every flushed table overlaps the others and stays in level 0 (trigger 8: not compacted yet).
    for (let i = 0; i < 40; i++) await setup.put(Buffer.from(key((i * 37) % 40)), Buffer.alloc(50, (i * 37) % 40));
    await setup.waitForBackgroundIdle();
    assert.ok((await setup.stats()).figures['level0_files']! >= 2);
    await setup.close();
    const table = memory.fileNames().find((name) => name.endsWith('.sst'))!;
    memory.flipBit(table, 10, 2); // inside the first data block
    const engine = engineOn(memory, clock, { level0CompactionTrigger: 1, level0StopWritesTrigger: 12 });
    await engine.open();
    await engine.waitForBackgroundIdle();
    assert.equal(engine.health().state, 'failed');
    assert.equal(engine.health().code, 'IMPULSE_ERR_ENGINE_CORRUPTION');
    assert.match(engine.health().reason!, new RegExp(table.split('/').pop()!.replace('.', '\\.')));
    await assert.rejects(engine.put(Buffer.from('x'), Buffer.from('y')), rejectsWith('IMPULSE_ERR_ENGINE_READ_ONLY'));
    assert.deepEqual(await engine.get(Buffer.from(key(39))), Buffer.alloc(50, 39));
    await assert.rejects(engine.close(), rejectsWith('IMPULSE_ERR_ENGINE_READ_ONLY'));
  });

  it('a manifest rename that fails leaves it read-only (the new manifest may be on disk) and deletes nothing it may list', async () => {
    const memory = new MemVfs();
    const vfs = new ErrnoVfs(memory);
    const engine = engineOn(vfs, new ManualClock());
    await engine.open();
    const history = new KvHistory();
    vfs.failWith = (op) => (op.operation === 'rename' && op.path.startsWith(`${DIR}/MANIFEST.tmp`) ? 'ENOSPC' : undefined);
    for (let i = 0; i < 40 && engine.health().state === 'ok'; i++) {
      await history.put(engine, key(i), 'w'.repeat(60)).catch((error: unknown) => assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_READ_ONLY'), String(error)));
      await engine.waitForBackgroundIdle();
    }
    assert.equal(engine.health().state, 'read-only');
    assert.match(engine.health().reason!, /manifest/);
    await engine.close().catch(() => undefined);
    const reopened = engineOn(memory.recover('keep-unsynced'), new ManualClock());
    await reopened.open();
    await assertHolds(reopened, history);
    await reopened.checkLevels();
    await reopened.close();
  });
});

describe('lsm errors from the background worker thread', () => {
  it('keep their classification across the thread boundary: errno, catalog code, assertion', () => {
    const roundTrip = (error: unknown): Error => deserializeError(serializeError(error));
    const full = roundTrip(vfsError('write', 'db/000012.sst', errnoError('ENOSPC', 'no space left on device')));
    assert.equal(transientCode(full), 'IMPULSE_ERR_ENGINE_NO_SPACE');
    assert.match(full.message, /000012\.sst/);
    assert.equal(transientCode(roundTrip(vfsError('open', 'db/x', errnoError('EMFILE', 'too many open files')))), 'IMPULSE_ERR_ENGINE_TOO_MANY_FILES');
    const io = roundTrip(vfsError('write', 'db/x', errnoError('EIO', 'i/o error')));
    assert.equal(transientCode(io), undefined);
    assert.equal(isDamageOrBug(io), false);
    assert.equal(isDamageOrBug(roundTrip(new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', 'lsm: db/7.sst: bad block'))), true);
    const bug = roundTrip(new AssertionError('assertion failed: keys out of order'));
    assert.ok(bug instanceof AssertionError && isDamageOrBug(bug));
  });
});

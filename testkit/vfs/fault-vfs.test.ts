import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isImpulseError } from '../../src/errors.js';
import { LsmEngine } from '../../src/storage/lsm/lsm-engine.js';
import { AssertionError } from '../../src/util/assert.js';
import type { Clock, TimerHandle } from '../../src/util/clock.js';
import { SeededRandom } from '../../src/util/random.js';
import { NodeVfs } from '../../src/vfs/node-vfs.js';
import { errorCodeOf, joinPath, type Vfs, type VfsFile } from '../../src/vfs/vfs.js';
import { CrashError, always, delay, fromIndex, onIndex, onlyOperations, startingAt, withProbability } from './fault-policy.js';
import { FaultVfs } from './fault-vfs.js';
import { MemVfs } from './mem-vfs.js';
import { vfsConformanceSuite } from './vfs-conformance.js';

async function tempDir(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'impulse-faultvfs-'));
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

// With no policies a FaultVfs is the vfs it wraps: the shared suite on the real disk and on MemVfs.
vfsConformanceSuite('FaultVfs over NodeVfs', async () => {
  const { root, cleanup } = await tempDir();
  return { vfs: new FaultVfs(new NodeVfs()), root, cleanup };
});
vfsConformanceSuite('FaultVfs over MemVfs', async () => {
  const inner = new MemVfs();
  await inner.mkdir('root');
  return { vfs: new FaultVfs(inner), root: 'root', cleanup: async () => undefined };
});

/** A Clock whose timers fire only when the test says so. */
class ManualClock implements Clock {
  private readonly timers: Array<{ at: number; callback: () => void }> = [];
  private time = 0;

  now(): number {
    return this.time;
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer = { at: this.time + delayMs, callback };
    this.timers.push(timer);
    return { cancel: () => this.timers.splice(this.timers.indexOf(timer), 1) };
  }

  advance(ms: number): void {
    this.time += ms;
    for (const timer of this.timers.filter((t) => t.at <= this.time)) {
      this.timers.splice(this.timers.indexOf(timer), 1);
      timer.callback();
    }
  }
}

const settled = (promise: Promise<unknown>): { done: boolean } => {
  const state = { done: false };
  promise.then(
    () => (state.done = true),
    () => (state.done = true),
  );
  return state;
};

describe('FaultVfs on the real disk', () => {
  it('an injected write error reaches the caller as IMPULSE_ERR_ENGINE_IO and leaves the file untouched', async () => {
    const { root, cleanup } = await tempDir();
    try {
      const vfs = new FaultVfs(new NodeVfs(), [onlyOperations(['file.write'], startingAt(3, always('error')))]);
      const path = joinPath(root, 'data');
      const file = await vfs.open(path, { create: true }); // 0
      await file.write(0, Buffer.from('kept')); // 1
      await file.sync(); // 2
      const failure = await file.write(4, Buffer.from('lost')).catch((error: unknown) => error); // 3
      assert.ok(isImpulseError(failure, 'IMPULSE_ERR_ENGINE_IO'), String(failure));
      assert.equal(errorCodeOf(failure), 'EIO');
      assert.match((failure as Error).message, /file\.write ".*data" failed: EIO: injected I\/O error at operation 3/);
      await file.close(); // 4: not a write, passes
      assert.equal(await readFile(path, 'utf8'), 'kept', 'the refused write never reached the disk');
      assert.deepEqual(vfs.firedFaults.map((fault) => [fault.index, fault.operation, fault.action]), [[3, 'file.write', 'error']]);
    } finally {
      await cleanup();
    }
  });

  it('injects any errno (a full disk), and a crash refuses everything after it without touching the disk', async () => {
    const { root, cleanup } = await tempDir();
    try {
      const vfs = new FaultVfs(new NodeVfs(), [onIndex(1, { errno: 'ENOSPC' }), onIndex(3, 'crash')]);
      const file = await vfs.open(joinPath(root, 'a'), { create: true }); // 0
      await assert.rejects(file.write(0, Buffer.from('x')), (error: unknown) => errorCodeOf(error) === 'ENOSPC'); // 1
      await file.write(0, Buffer.from('y')); // 2
      await assert.rejects(vfs.open(joinPath(root, 'b'), { create: true }), CrashError); // 3
      await assert.rejects(file.sync(), (error: unknown) => error instanceof CrashError && error.crashIndex === 3); // 4
      assert.equal(vfs.crashed, true);
      await assert.rejects(stat(joinPath(root, 'b')), /ENOENT/, 'the refused open created nothing');
      assert.equal(vfs.name, 'fault(ENOSPC at op 1, crash at op 3, crashed at op 3) over node-fs');
      assert.deepEqual(vfs.stats, { operations: 5, injectedFailures: 2, delayedOperations: 0, injectedDelayMs: 0 });
    } finally {
      await cleanup();
    }
  });

  it('keeps readSync/writeSync exactly when the wrapped file has them, and counts and faults them like read/write', async () => {
    const { root, cleanup } = await tempDir();
    try {
      const vfs = new FaultVfs(new NodeVfs(), [onIndex(2)]);
      const file = await vfs.open(joinPath(root, 's'), { create: true }); // 0
      assert.ok(file.readSync !== undefined && file.writeSync !== undefined);
      file.writeSync(0, Buffer.from('abc')); // 1
      assert.throws(() => file.readSync!(0, 3), (error: unknown) => errorCodeOf(error) === 'EIO'); // 2
      assert.deepEqual(file.readSync(0, 3), Buffer.from('abc')); // 3
      assert.equal(vfs.ioCount, 4);
      await file.close();

      const withoutSync: Vfs = new FaultVfs(new AsyncOnlyVfs(new MemVfs()));
      const plain = await withoutSync.open('p', { create: true });
      assert.equal(plain.readSync, undefined);
      assert.equal(plain.writeSync, undefined);
    } finally {
      await cleanup();
    }
  });
});

describe('FaultVfs under an engine on the real disk', () => {
  it('a failing fsync reaches the lsm engine\'s writer as IMPULSE_ERR_ENGINE_IO, and what was acknowledged before survives', async () => {
    const { root, cleanup } = await tempDir();
    try {
      const vfs = new FaultVfs(new NodeVfs());
      const engine = new LsmEngine({ dataDir: joinPath(root, 'db'), vfs, sync: 'fsync' });
      await engine.open();
      for (let i = 0; i < 20; i++) await engine.put(Buffer.from(`k${i}`), Buffer.from(`v${i}`));
      vfs.inject(onlyOperations(['file.sync'], always('error')));
      await assert.rejects(engine.put(Buffer.from('late'), Buffer.from('x')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO') && errorCodeOf(error) === 'EIO');
      assert.ok(vfs.stats.injectedFailures >= 1);
      vfs.clearFaults();
      await engine.close().catch(() => undefined); // a fail-stop engine may refuse a clean close
      const reopened = new LsmEngine({ dataDir: joinPath(root, 'db'), vfs: new NodeVfs() });
      await reopened.open();
      for (let i = 0; i < 20; i++) assert.deepEqual(await reopened.get(Buffer.from(`k${i}`)), Buffer.from(`v${i}`));
      await reopened.close();
    } finally {
      await cleanup();
    }
  });
});

describe('FaultVfs latency', () => {
  it('delays an operation on the clock it is given; it is counted when called and takes effect after the delay', async () => {
    const clock = new ManualClock();
    const inner = new MemVfs();
    const vfs = new FaultVfs(inner, [onlyOperations(['file.sync'], always(delay(50)))], { clock });
    const file = await vfs.open('f', { create: true });
    await file.write(0, Buffer.from('x'));
    const sync = file.sync();
    const state = settled(sync);
    assert.equal(vfs.ioCount, 3, 'counted at the call');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(state.done, false, 'still waiting for the clock');
    assert.equal(inner.counters.fileSyncs, 0, 'not yet passed to the wrapped vfs');
    clock.advance(49);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(state.done, false);
    clock.advance(1);
    await sync;
    assert.equal(inner.counters.fileSyncs, 1);
    assert.deepEqual(vfs.stats, { operations: 3, injectedFailures: 0, delayedOperations: 1, injectedDelayMs: 50 });
  });

  it('latencies add up, and a later error still fires after them', async () => {
    const clock = new ManualClock();
    const vfs = new FaultVfs(new MemVfs(), [always(delay(5)), onlyOperations(['exists'], always(delay(10))), onIndex(1)], { clock });
    assert.equal(vfs.name, 'fault(delay 5ms on every op, delay 10ms on every op on exists, EIO at op 1) over mem');
    const first = vfs.exists('x');
    clock.advance(15);
    assert.equal(await first, false);
    const second = vfs.exists('x').catch((error: unknown) => error);
    clock.advance(15);
    assert.equal(errorCodeOf(await second), 'EIO');
    assert.equal(vfs.stats.injectedDelayMs, 30);
  });

  it('on the real clock, async operations wait and synchronous ones block for at least the latency', async () => {
    const { root, cleanup } = await tempDir();
    try {
      const vfs = new FaultVfs(new NodeVfs(), [onlyOperations(['file.read', 'file.sync'], always(delay(25)))]);
      const file = await vfs.open(joinPath(root, 'slow'), { create: true });
      file.writeSync!(0, Buffer.from('x'));
      let started = performance.now();
      await file.sync();
      assert.ok(performance.now() - started >= 24, 'async sync waited');
      started = performance.now();
      file.readSync!(0, 1);
      assert.ok(performance.now() - started >= 24, 'readSync blocked');
      await file.close();
    } finally {
      await cleanup();
    }
  });
});

describe('fault policies on MemVfs', () => {
  it('MemVfs takes the same policies, except delays, which it refuses loudly', async () => {
    const vfs = new MemVfs().inject(onlyOperations(['file.sync'], withProbability(1, new SeededRandom(1), { errno: 'EDQUOT' })));
    const file = await vfs.open('f', { create: true });
    await assert.rejects(file.sync(), (error: unknown) => errorCodeOf(error) === 'EDQUOT');
    assert.equal(vfs.counters.injectedErrors, 1);
    const slow = new MemVfs().inject(always(delay(1)));
    await assert.rejects(slow.exists('f'), AssertionError);
  });

  it('the same seed fires the same faults; FaultVfs over MemVfs numbers its own operations', async () => {
    const run = async (): Promise<number[]> => {
      const inner = new MemVfs();
      const vfs = new FaultVfs(inner, [withProbability(0.3, new SeededRandom(42)), fromIndex(200, 'crash')]);
      for (let i = 0; i < 220; i++) await vfs.exists(`f${i}`).catch(() => undefined);
      assert.equal(vfs.crashed, true);
      assert.equal(inner.crashed, false, 'the crash is the wrapper\'s: the wrapped vfs never saw it');
      assert.ok(inner.ioCount < 200, `only operations that were not refused reached it: ${inner.ioCount}`);
      return vfs.firedFaults.map((fault) => fault.index);
    };
    const first = await run();
    assert.deepEqual(await run(), first);
    assert.ok(first.length > 40 && first.length < 100, `about 30% of 200 fail before the crash: ${first.length}`);
  });
});

/** A Vfs whose files have no synchronous methods (to check FaultFile mirrors that). */
class AsyncOnlyVfs implements Vfs {
  readonly name = 'async-only';

  constructor(private readonly inner: Vfs) {}

  async open(path: string, options?: Parameters<Vfs['open']>[1]): Promise<VfsFile> {
    const file = await this.inner.open(path, options);
    return { path, read: (p, l) => file.read(p, l), write: (p, d) => file.write(p, d), size: () => file.size(), truncate: (l) => file.truncate(l), sync: () => file.sync(), close: () => file.close() };
  }

  readFile = (path: string): Promise<Buffer> => this.inner.readFile(path);
  rename = (from: string, to: string): Promise<void> => this.inner.rename(from, to);
  unlink = (path: string): Promise<void> => this.inner.unlink(path);
  list = (dir: string): Promise<string[]> => this.inner.list(dir);
  mkdir = (dir: string): Promise<void> => this.inner.mkdir(dir);
  syncDir = (dir: string): Promise<void> => this.inner.syncDir(dir);
  exists = (path: string): Promise<boolean> => this.inner.exists(path);
  size = (path: string): Promise<number> => this.inner.size(path);
}

/**
 * SegmentedLogStore's contract: the read side, one write and one fsync per
 * save, segments and compaction, the core's promises asserted, fail-stop,
 * options; and a fast-check model test (random saves, truncations, installs,
 * compactions, reads and reopens compared with a plain model after every step).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isImpulseError } from '../../errors.js';
import { AssertionError } from '../../util/assert.js';
import { SeededRandom } from '../../util/random.js';
import type { Clock } from '../../util/clock.js';
import type { Vfs, VfsFile } from '../../vfs/vfs.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import {
  LogHistory,
  applyUpdate,
  canonical,
  compactAsync,
  describeDifference,
  emptyLogState,
  lastIndexOf,
  randomOperation,
  saveAsync,
  type LogState,
} from '../../../testkit/raft-log/log-model.js';
import { entryBytes, type Entry, type HardState } from '../types.js';
import type { LogUpdate } from '../storage.js';
import { SegmentedLogStore } from './log-store.js';

const DIR = 'groups/1';
const normal = (index: number, term: number, bytes = 50): Entry => ({ kind: 'normal', index, term, data: Buffer.alloc(bytes, index & 0xff) });
const entriesOf = (from: number, to: number, term: number, bytes = 50): Entry[] => Array.from({ length: to - from + 1 }, (_, i) => normal(from + i, term, bytes));
const hs = (term: number, commit: number, vote = 1): HardState => ({ term, vote, commit });
const save = (entries: Entry[], hardState: HardState | null = null): LogUpdate => ({ snapshot: null, entries, hardState });

async function saveError(store: SegmentedLogStore, update: LogUpdate): Promise<Error | null> {
  return new Promise((resolve) => store.save(update, resolve));
}

describe('raft log store', () => {
  it('a new log is empty, holds the bootstrap configuration, and is one durable segment', async () => {
    const vfs = new MemVfs();
    const confState = { voters: [1, 2, 3], learners: [] };
    const store = await SegmentedLogStore.open(vfs, DIR, { bootstrapConfState: confState });
    assert.equal(describeDifference(store, emptyLogState(confState)), undefined);
    assert.equal(store.term(0), 0);
    assert.equal(store.term(1), undefined);
    assert.deepEqual(vfs.fileNames(), [`${DIR}/0000000000000001-0000000000000001.log`]);
    await store.close();
    const reopened = await SegmentedLogStore.open(vfs.recover('lose-unsynced'), DIR, { bootstrapConfState: { voters: [9], learners: [] } });
    assert.equal(describeDifference(reopened, emptyLogState(confState)), undefined, 'the persisted configuration wins over the option');
    await reopened.close();
  });

  it('answers the read side from memory at once, and serves a save in flight from memory even with no cache', async () => {
    const vfs = new MemVfs();
    const store = await SegmentedLogStore.open(vfs, DIR, { cacheBytesMax: 0 });
    await saveAsync(store, save(entriesOf(1, 5, 1), hs(1, 2)));
    const pending = saveAsync(store, save(entriesOf(4, 8, 2), hs(2, 3)));
    // Before the write has happened: the truncation and the new entries are visible.
    assert.equal(store.lastIndex(), 8);
    assert.equal(store.term(4), 2);
    assert.equal(store.term(3), 1);
    assert.equal(canonical(store.entries(3, 9, Infinity)), canonical([normal(3, 1), ...entriesOf(4, 8, 2)]));
    await pending;
    assert.equal(canonical(store.entries(1, 9, Infinity)), canonical([...entriesOf(1, 3, 1), ...entriesOf(4, 8, 2)]));
    assert.ok(store.stats()['disk_reads']! > 0, 'with no cache, old entries come from disk');
    await store.close();
  });

  it('limits entries() by payload bytes (entryBytes): stops before passing bytesMax, always returns at least one', async () => {
    const store = await SegmentedLogStore.open(new MemVfs(), DIR, { cacheBytesMax: 200 });
    await saveAsync(store, save(entriesOf(1, 10, 1, 50), hs(1, 0)));
    const size = 50;
    assert.equal(store.entries(1, 11, 0).length, 1);
    assert.equal(store.entries(1, 11, size * 3).length, 3);
    assert.equal(store.entries(1, 11, size * 3 + size - 1).length, 3);
    assert.equal(store.entries(2, 11, Infinity).length, 9);
    assert.deepEqual(store.entries(4, 4, 100), []);
    assert.throws(() => store.entries(0, 2, 100), AssertionError);
    assert.throws(() => store.entries(5, 12, 100), AssertionError);
    await store.close();
  });

  it('costs one write and one fsync per save; a new segment adds its open and a directory fsync', async () => {
    const vfs = new MemVfs({ recordOperations: true });
    const store = await SegmentedLogStore.open(vfs, DIR, { segmentBytesMax: 1000 });
    let next = 1;
    let created = 0;
    for (let i = 0; i < 20; i++) {
      const before = vfs.ioCount;
      const segments = store.stats()['segments']!;
      await saveAsync(store, save(entriesOf(next, next + 2, 1, 60), hs(1, next)));
      next += 3;
      const operations = vfs.operations.slice(before).map((op) => op.operation);
      if (store.stats()['segments']! > segments) {
        created++;
        assert.deepEqual(operations, ['open', 'file.write', 'file.sync', 'syncDir']);
      } else {
        assert.deepEqual(operations, ['file.write', 'file.sync']);
      }
    }
    assert.ok(created >= 3, `${created} segments created`);
    const names = vfs.fileNames().map((name) => name.slice(DIR.length + 1));
    assert.equal(names[1], '0000000000000002-' + String(Number(names[1]!.slice(17, 33))).padStart(16, '0') + '.log');
    await store.close();
  });

  it('puts a save larger than a segment into a fresh segment of its own, once', async () => {
    const vfs = new MemVfs();
    const store = await SegmentedLogStore.open(vfs, DIR, { segmentBytesMax: 400 });
    await saveAsync(store, save([normal(1, 1, 10)], hs(1, 0)));
    await saveAsync(store, save([normal(2, 1, 2000)], null));
    await saveAsync(store, save([normal(3, 1, 10)], null));
    assert.equal(vfs.fileNames().length, 3);
    await store.close();
    const reopened = await SegmentedLogStore.open(vfs, DIR, { segmentBytesMax: 400 });
    assert.equal(canonical(reopened.entries(1, 4, Infinity)), canonical([normal(1, 1, 10), normal(2, 1, 2000), normal(3, 1, 10)]));
    await reopened.close();
  });

  it('compaction drops entries and deletes whole dead segments (then syncs the directory); an install leaves them to the next compaction', async () => {
    const vfs = new MemVfs({ recordOperations: true });
    const store = await SegmentedLogStore.open(vfs, DIR, { segmentBytesMax: 500 });
    for (let i = 1; i <= 30; i += 3) await saveAsync(store, save(entriesOf(i, i + 2, 1), hs(1, i + 2)));
    const before = vfs.fileNames().length;
    const firstOperation = vfs.operations.length;
    await compactAsync(store, { index: 20, term: 1, confState: { voters: [1], learners: [] } });
    const operations = vfs.operations.slice(firstOperation).map((op) => op.operation);
    assert.deepEqual(operations.slice(-2), ['unlink', 'syncDir'], 'deleted segments, then synced the directory');
    assert.equal(store.firstIndex(), 21);
    assert.equal(store.term(20), 1);
    assert.equal(store.term(19), undefined);
    assert.ok(vfs.fileNames().length < before, 'no segment deleted');
    assert.ok(vfs.fileNames().length >= 2);
    await saveAsync(store, { snapshot: { index: 50, term: 2, confState: { voters: [1], learners: [] } }, entries: [normal(51, 2)], hardState: hs(2, 50) });
    assert.deepEqual([store.firstIndex(), store.lastIndex(), store.term(50)], [51, 51, 2]);
    const afterInstall = vfs.fileNames().length;
    await compactAsync(store, { index: 50, term: 2, confState: { voters: [1], learners: [] } });
    assert.ok(vfs.fileNames().length < afterInstall);
    assert.equal(store.stats()['segments'], vfs.fileNames().length);
    await store.close();
  });

  it('asserts the core\'s promises and changes nothing when one is broken', async () => {
    const store = await SegmentedLogStore.open(new MemVfs(), DIR);
    await saveAsync(store, save(entriesOf(1, 5, 2), hs(2, 3)));
    const broken: Array<[string, LogUpdate]> = [
      ['a gap', save([normal(7, 2)])],
      ['a truncation of a committed entry', save([normal(3, 3)], hs(3, 3))],
      ['entries whose terms decrease', save([normal(6, 1)])],
      ['non-contiguous entries', save([normal(6, 2), normal(8, 2)])],
      ['a term going back', save([], hs(1, 3))],
      ['a second vote in a term', save([], hs(2, 3, 7))],
      ['a commit going back', save([], hs(2, 2))],
      ['a commit beyond the last entry', save([], hs(2, 6))],
      ['entries at the boundary after an install', { snapshot: { index: 9, term: 2, confState: { voters: [], learners: [] } }, entries: [normal(9, 2)], hardState: null }],
    ];
    for (const [what, update] of broken) {
      assert.throws(() => store.save(update, () => assert.fail('done called')), AssertionError, what);
      assert.equal(describeDifference(store, applyUpdate(emptyLogState(), save(entriesOf(1, 5, 2), hs(2, 3)))), undefined, what);
    }
    assert.throws(() => store.compact({ index: 6, term: 2, confState: { voters: [], learners: [] } }, () => undefined), AssertionError);
    assert.throws(() => store.compact({ index: 4, term: 1, confState: { voters: [], learners: [] } }, () => undefined), AssertionError);
    const first = saveAsync(store, save([normal(6, 2)]));
    assert.throws(() => store.save(save([normal(7, 2)]), () => undefined), /in flight/);
    await first;
    await store.close();
  });

  it('is fail-stop: after a failed write every call reports that first error', async () => {
    const vfs = new MemVfs();
    const store = await SegmentedLogStore.open(vfs, DIR);
    await saveAsync(store, save(entriesOf(1, 2, 1), hs(1, 1)));
    vfs.inject({ kind: 'error', at: vfs.ioCount });
    const failed = await saveError(store, save([normal(3, 1)]));
    assert.ok(isImpulseError(failed, 'IMPULSE_ERR_ENGINE_IO'));
    assert.equal(await saveError(store, save([], hs(2, 1))), failed);
    const compacted = await new Promise<Error | null>((resolve) => store.compact({ index: 1, term: 1, confState: { voters: [], learners: [] } }, resolve));
    assert.equal(compacted, failed);
    assert.throws(() => store.entries(1, 2, 10), (error) => error === failed);
    assert.throws(() => store.term(1), (error) => error === failed);
    await store.close();
  });

  it('calls done asynchronously, completes an empty save without I/O, waits for a save in flight on close, then refuses calls', async () => {
    const vfs = new MemVfs();
    const store = await SegmentedLogStore.open(vfs, DIR);
    let called = false;
    const before = vfs.ioCount;
    store.save(save([]), () => (called = true));
    assert.equal(called, false);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(called, true);
    assert.equal(vfs.ioCount, before);
    let saved: Error | null | undefined;
    store.save(save([normal(1, 1)], hs(1, 0)), (error) => (saved = error));
    await store.close();
    assert.equal(saved, null);
    assert.throws(() => store.lastIndex(), (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_NOT_OPEN'));
    assert.ok(isImpulseError(await saveError(store, save([normal(2, 1)])), 'IMPULSE_ERR_ENGINE_NOT_OPEN'));
    await store.close();
  });

  it('refuses bad options and a Vfs without synchronous reads, with IMPULSE_ERR_CONFIG_INVALID', async () => {
    for (const options of [{ segmentBytesMax: 10 }, { segmentBytesMax: 1.5e3 + 0.5 }, { cacheBytesMax: -1 }, { recovery: 'skip-everything' }]) {
      await assert.rejects(SegmentedLogStore.open(new MemVfs(), DIR, options as object), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'), JSON.stringify(options));
    }
    const memory = new MemVfs();
    const withoutReadSync: Vfs = Object.create(memory, {
      open: { value: async (path: string, options?: object): Promise<VfsFile> => {
        const file = await memory.open(path, options);
        return { path: file.path, read: (p, l) => file.read(p, l), write: (p, d) => file.write(p, d), size: () => file.size(), truncate: (l) => file.truncate(l), sync: () => file.sync(), close: () => file.close() };
      } },
    });
    await assert.rejects(SegmentedLogStore.open(withoutReadSync, DIR), (error) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID') && /readSync/.test(error.message));
  });

  it('reports save counts, fsyncs and latency through the injected clock', async () => {
    let now = 1000;
    const clock: Clock = { now: () => (now += 5), setTimer: () => ({ cancel: () => undefined }) };
    const store = await SegmentedLogStore.open(new MemVfs(), DIR, { clock });
    await saveAsync(store, save(entriesOf(1, 4, 1), hs(1, 2)));
    await saveAsync(store, save([], hs(1, 3)));
    const figures = store.stats();
    assert.deepEqual(
      [figures['saves'], figures['saved_entries'], figures['fsyncs'], figures['save_latency_ms_total'], figures['save_latency_ms_max'], figures['first_index'], figures['last_index']],
      [2, 4, 2, 10, 5, 1, 4],
    );
    await store.close();
  });

  it('matches a plain model through random saves, truncations, installs, compactions, reads and reopens (fast-check)', async () => {
    const options = { segmentBytesMax: 400, cacheBytesMax: 250 };
    interface Real {
      vfs: MemVfs;
      store: SegmentedLogStore;
    }
    interface Model {
      state: LogState;
    }
    class Operation implements fc.AsyncCommand<Model, Real> {
      constructor(readonly seed: number) {}
      check = (): boolean => true;
      async run(model: Model, real: Real): Promise<void> {
        const history = new LogHistory(model.state);
        await history.run(real.store, randomOperation(model.state, new SeededRandom(this.seed), { dataBytesMax: 100, oversizedBytes: 600 }));
        model.state = history.acknowledged;
        assert.equal(describeDifference(real.store, model.state), undefined);
      }
      toString = (): string => `operation(${this.seed})`;
    }
    class Reopen implements fc.AsyncCommand<Model, Real> {
      constructor(readonly how: 'close' | 'process-crash' | 'power-loss') {}
      check = (): boolean => true;
      async run(model: Model, real: Real): Promise<void> {
        if (this.how === 'close') await real.store.close();
        real.vfs = real.vfs.recover(this.how === 'power-loss' ? 'lose-unsynced' : 'keep-unsynced');
        real.store = await SegmentedLogStore.open(real.vfs, DIR, options);
        assert.equal(real.store.recoveryReport.tornTail, null);
        assert.equal(describeDifference(real.store, model.state), undefined);
      }
      toString = (): string => `reopen(${this.how})`;
    }
    class Read implements fc.AsyncCommand<Model, Real> {
      constructor(readonly from: number, readonly span: number, readonly bytesMax: number) {}
      check = (model: Readonly<Model>): boolean => lastIndexOf(model.state) > model.state.boundary.index;
      async run(model: Model, real: Real): Promise<void> {
        const { boundary, entries } = model.state;
        const lo = boundary.index + 1 + Math.floor(this.from * entries.length);
        const hi = Math.min(lastIndexOf(model.state) + 1, lo + 1 + Math.floor(this.span * entries.length));
        const got = real.store.entries(lo, hi, this.bytesMax);
        const wanted = entries.slice(lo - boundary.index - 1, hi - boundary.index - 1);
        assert.ok(got.length >= 1 && got.length <= wanted.length);
        assert.equal(canonical(got), canonical(wanted.slice(0, got.length)));
        const sizes = wanted.map(entryBytes);
        const total = sizes.slice(0, got.length).reduce((a, b) => a + b, 0);
        if (got.length > 1) assert.ok(total <= this.bytesMax, 'passed bytesMax');
        if (got.length < wanted.length) assert.ok(total + sizes[got.length]! > this.bytesMax, 'stopped early');
      }
      toString = (): string => `read(${this.from.toFixed(2)}, ${this.span.toFixed(2)}, ${this.bytesMax})`;
    }
    const commands = [
      fc.integer({ min: 0, max: 2 ** 31 }).map((seed) => new Operation(seed)),
      fc.integer({ min: 0, max: 2 ** 31 }).map((seed) => new Operation(seed)),
      fc.integer({ min: 0, max: 2 ** 31 }).map((seed) => new Operation(seed)),
      fc.constantFrom('close' as const, 'process-crash' as const, 'power-loss' as const).map((how) => new Reopen(how)),
      fc.tuple(fc.double({ min: 0, max: 0.999, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 800 })).map(([from, span, bytes]) => new Read(from, span, bytes)),
    ];
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 120, size: 'max' }), async (sequence) => {
        const vfs = new MemVfs();
        const real: Real = { vfs, store: await SegmentedLogStore.open(vfs, DIR, options) };
        try {
          await fc.asyncModelRun(() => ({ model: { state: emptyLogState() }, real }), sequence);
        } finally {
          await real.store.close();
        }
      }),
      { numRuns: Number(process.env["RAFT_LOG_MODEL_RUNS"] ?? 100), seed: Number(process.env["RAFT_LOG_MODEL_SEED"] ?? 20261124) },
    );
  });
});

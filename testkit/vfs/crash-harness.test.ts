/**
 * Tests of the crash harness itself (STYLE.md rule 12): it must ACCEPT small
 * correct stores and REJECT small stores with the classic durability bugs.
 * The tiny stores live in tiny-stores.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { AssertionError } from '../../src/util/assert.js';
import { CrashHarnessFailure, choosePoints, sweepCrashPoints, type SweepSummary } from './crash-harness.js';
import type { RecoverMode } from './mem-vfs.js';
import { KvHistory, checkRecoveredKv, collectContents, readAllEntries, crashAtEveryIoPoint, ioErrorAtEveryPoint } from '../storage/kv-crash.js';
import { CommitMarkerStore, LogStore, ManifestStore, SnapshotStore, kvWorkload, type Flaws, type StoreKind } from './tiny-stores.js';

interface SweepExtras {
  readonly seed?: number;
  readonly modes?: readonly RecoverMode[];
  readonly collectFailures?: boolean;
  readonly consistency?: 'per-key' | 'prefix';
  readonly crashDuringRecovery?: boolean;
  readonly recoveryFlaws?: Flaws;
  readonly drawsPerPoint?: number;
}

function crashSweep(kind: StoreKind, flaws: Flaws, extra: SweepExtras = {}): Promise<SweepSummary> {
  return crashAtEveryIoPoint({
    seed: extra.seed ?? 7,
    collectFailures: extra.collectFailures ?? false,
    consistency: extra.consistency ?? 'prefix',
    crashDuringRecovery: extra.crashDuringRecovery ?? false,
    ...(extra.modes === undefined ? {} : { modes: extra.modes }),
    ...(extra.drawsPerPoint === undefined ? {} : { drawsPerPoint: extra.drawsPerPoint }),
    workload: async (vfs, history, { random }) => {
      const store = await kind.open(vfs, flaws);
      await kvWorkload(store, history, random);
      await store.close();
    },
    recover: async (vfs) => {
      const store = await kind.open(vfs, extra.recoveryFlaws); // by default the recovery code is the correct one
      const entries = store.entries();
      await store.close();
      return entries;
    },
  });
}

async function rejection(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof AssertionError, `expected the harness to report a violation, got ${String(error)}`);
  return error.message;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe('crash harness: accepts correct stores', () => {
  for (const [name, kind] of [['log store', LogStore], ['snapshot store', SnapshotStore]] as const) {
    it(`${name}: every crash point, lose-unsynced and torn, prefix consistency, crash during recovery`, async () => {
      for (const seed of [1, 2, 3]) {
        const summary = await crashSweep(kind, {}, { seed, crashDuringRecovery: true });
        assert.ok(summary.ioOperations > 30, `workload does real I/O: ${summary.ioOperations}`);
        assert.equal(summary.points, summary.ioOperations + 1, 'every point plus the fault-free end');
        assert.equal(summary.checks, summary.points * 2);
        assert.deepEqual(summary.failures, []);
      }
    });
  }

  it('log store: every I/O error point, once and persistent, is reported to the caller and loses nothing acknowledged', async () => {
    const summary = await ioErrorAtEveryPoint({
      seed: 3,
      consistency: 'prefix',
      workload: async (vfs, history, { random }) => {
        const store = await LogStore.open(vfs);
        await kvWorkload(store, history, random);
        await store.close();
      },
      recover: async (vfs) => {
        const store = await LogStore.open(vfs);
        await store.close();
        return store.entries();
      },
    });
    assert.ok(summary.points > 30);
    assert.equal(summary.checks, summary.points * 2 * 2);
  });
});

describe('crash harness: rejects broken stores', () => {
  it('acknowledging before fsync loses acknowledged writes', async () => {
    const message = await rejection(crashSweep(LogStore, { skipFileSync: true }));
    assert.match(message, /seed 7/);
    assert.match(message, /acknowledged write lost|no prefix/);
    assert.match(message, /recovery mode '(lose-unsynced|torn)'/);
  });

  it('creating the log without syncing the directory loses the whole file', async () => {
    const message = await rejection(crashSweep(LogStore, { skipDirSync: true }));
    assert.match(message, /acknowledged write lost/);
  });

  it('a batch written as separate records is not atomic', async () => {
    const summary = await crashSweep(LogStore, { splitBatches: true }, { collectFailures: true, consistency: 'per-key' });
    assert.ok(summary.failures.length > 0);
    assert.ok(
      summary.failures.some((failure) => /applied partially/.test(failure.message)),
      summary.failures.map((failure) => failure.message).join('\n'),
    );
  });

  it('rename without syncing the directory loses the acknowledged snapshot', async () => {
    const message = await rejection(crashSweep(SnapshotStore, { skipDirSync: true }));
    assert.match(message, /acknowledged write lost|no prefix/);
  });

  it('rename without syncing the new file first exposes an empty file', async () => {
    const message = await rejection(crashSweep(SnapshotStore, { skipSyncBeforeRename: true }));
    assert.match(message, /recovery failed: SyntaxError/);
  });

  it('a swallowed fsync error is reported', async () => {
    const message = await rejection(
      ioErrorAtEveryPoint({
        seed: 3,
        workload: async (vfs, history, { random }) => {
          const store = await LogStore.open(vfs, { swallowSyncErrors: true });
          await kvWorkload(store, history, random);
          await store.close();
        },
        recover: async (vfs) => (await LogStore.open(vfs)).entries(),
      }),
    );
    assert.match(message, /EIO \(once\) at I\/O operation \d+ of \d+ \(file\.sync db\/log\).*was swallowed/);
  });

  it('an I/O error that surfaces as a TypeError is reported', async () => {
    const message = await rejection(
      ioErrorAtEveryPoint({
        seed: 3,
        workload: async (vfs, history, { random }) => {
          const store = await LogStore.open(vfs, { garbleErrors: true });
          await kvWorkload(store, history, random);
        },
        recover: async (vfs) => (await LogStore.open(vfs)).entries(),
      }),
    );
    assert.match(message, /non-ImpulseError: TypeError/);
  });

  it('writes acknowledged after a failed fsync are lost (fsyncgate), unless the vfs lets a retry persist them', async () => {
    const sweep = (syncFailureDropsWrites: boolean) =>
      ioErrorAtEveryPoint({
        seed: 3,
        syncFailureDropsWrites,
        persistence: ['once'],
        modes: ['lose-unsynced'],
        workload: async (vfs, history, { random }) => {
          const store = await LogStore.open(vfs, { continueAfterSyncError: true });
          // Keep going after failed writes (the history records them as failed: outcome unknown).
          for (let i = 0; i < 10; i++) await history.put(store, `k${random.int(4)}`, `v${i}`).catch(() => undefined);
          await store.close();
        },
        recover: async (vfs) => (await LogStore.open(vfs)).entries(),
      });
    const message = await rejection(sweep(true));
    assert.match(message, /EIO \(once\) at I\/O operation \d+ of \d+ \(file\.sync db\/log\).*acknowledged write lost/);
    const lenient = await sweep(false);
    assert.ok(lenient.checks > 10, 'without the fsyncgate model the same store passes: the model is what catches it');
  });

  it('a recovery that is not crash-safe is caught by crashDuringRecovery (and only by it)', async () => {
    const plain = await crashSweep(LogStore, {}, { recoveryFlaws: { rewriteOnOpen: true } });
    assert.deepEqual(plain.failures, []);
    const message = await rejection(crashSweep(LogStore, {}, { recoveryFlaws: { rewriteOnOpen: true }, crashDuringRecovery: true }));
    assert.match(message, /then crashed again at recovery I\/O operation \d+: .*acknowledged write lost/);
  });

  it("a missing fsync between a record and its commit marker is caught by 'reorder' (not by prefix-only modes)", async () => {
    const correct = await crashSweep(CommitMarkerStore, {}, { modes: ['lose-unsynced', 'reorder'] });
    assert.deepEqual(correct.failures, []);
    const prefixOnly = await crashSweep(CommitMarkerStore, { skipFileSync: true }, { modes: ['lose-unsynced'] });
    assert.deepEqual(prefixOnly.failures, [], 'lose-unsynced alone cannot see the missing barrier');
    const message = await rejection(crashSweep(CommitMarkerStore, { skipFileSync: true }, { modes: ['lose-unsynced', 'reorder'] }));
    assert.match(message, /recovery mode 'reorder': (recovery failed|.*phantom)/);
  });

  it("a missing directory sync between two directory changes is caught by 'reorder-dirs' (not by prefix modes)", async () => {
    // 16 draws per point: skipDirSyncBeforeManifest shows only when the rename survives and the table's name does not (1 in 8).
    const drawsPerPoint = 16;
    const correct = await crashSweep(ManifestStore, {}, { modes: ['lose-unsynced', 'torn', 'reorder', 'reorder-dirs'], drawsPerPoint });
    assert.deepEqual(correct.failures, []);
    assert.equal(correct.checks, correct.points * (1 + 3 * drawsPerPoint), 'the random modes are drawn 16 times per point, lose-unsynced once');
    for (const flaw of ['skipDirSyncAfterRename', 'skipDirSyncBeforeManifest'] as const) {
      const prefixOnly = await crashSweep(ManifestStore, { [flaw]: true }, { modes: ['lose-unsynced', 'torn', 'reorder'], drawsPerPoint });
      assert.deepEqual(prefixOnly.failures, [], `${flaw}: a prefix of the directory changes cannot show it`);
      const message = await rejection(crashSweep(ManifestStore, { [flaw]: true }, { modes: ['lose-unsynced', 'reorder-dirs'], drawsPerPoint }));
      assert.match(message, /recovery mode 'reorder-dirs' \(draw \d+\): recovery failed: ImpulseError: readFile "db\/table-\d+" failed: ENOENT/, flaw);
    }
  });

  it('a workload whose I/O differs between runs is reported', async () => {
    let runs = 0;
    const message = await rejection(
      sweepCrashPoints({
        seed: 1,
        newRecord: () => undefined,
        workload: async (vfs) => {
          runs++;
          const operations = runs === 1 ? 10 : 3; // the counting run does more I/O than the later ones
          for (let i = 0; i < operations; i++) await vfs.exists('x');
        },
        verify: async () => undefined,
      }),
    );
    assert.match(message, /never reached the crash point/);
  });

  it('tells its own verdicts from errors of the code under test by type, not by message', async () => {
    const sweep = (verify: () => Promise<string | undefined>, collectFailures: boolean) =>
      sweepCrashPoints({ seed: 1, collectFailures, newRecord: () => undefined, workload: async (vfs) => void (await vfs.exists('x')), verify });
    const lookalike = await sweep(async () => {
      throw new AssertionError('crash harness (seed 1): a message that only looks like a verdict');
    }, true);
    assert.equal(lookalike.failures.length, 4, 'recorded as a violation at both points in both default modes, not rethrown');
    for (const failure of lookalike.failures) assert.match(failure.message, /^recovery failed: AssertionError: crash harness \(seed 1\): a message/);
    const verdict = await sweep(async () => 'state is wrong', false).catch((error: unknown) => error);
    assert.ok(verdict instanceof CrashHarnessFailure && verdict instanceof AssertionError, String(verdict));
    assert.equal(verdict.failure?.message, 'state is wrong');
    assert.equal(verdict.failure?.point, 1, 'the fault-free end point is verified first');
  });

  it('an error other than the crash escaping the workload is reported', async () => {
    const message = await rejection(
      sweepCrashPoints({
        seed: 1,
        newRecord: () => undefined,
        workload: async (vfs) => {
          try {
            for (let i = 0; i < 5; i++) await vfs.exists('x');
          } catch {
            throw new Error('engine turned the crash into something else');
          }
        },
        verify: async () => undefined,
      }),
    );
    assert.match(message, /crash at I\/O operation 0 of 5 \(exists x\).*other than the crash: Error: engine turned/);
    assert.match(message, /Replay: \{ seed: 1, points: \[0\] \}/);
  });
});

describe('checkRecoveredKv', () => {
  const bytes = (text: string): Buffer => Buffer.from(text);
  const contents = (entries: Record<string, string>): Map<string, Buffer> => new Map(Object.entries(entries).map(([key, value]) => [bytes(key).toString('hex'), bytes(value)]));
  const history = (build: (h: KvHistory) => void): KvHistory => {
    const h = new KvHistory();
    build(h);
    return h;
  };

  const acked = history((h) => {
    h.ack(h.invoke({ type: 'put', key: 'a', value: '1' }));
    h.ack(h.invoke({ type: 'put', key: 'a', value: '2' }));
    h.ack(h.invoke({ type: 'put', key: 'b', value: '1' }));
    h.ack(h.invoke({ type: 'del', key: 'b' }));
    h.invoke({ type: 'put', key: 'a', value: '3' }); // never acknowledged
  });

  it('accepts the acknowledged state, with or without the unacknowledged write', () => {
    for (const consistency of ['per-key', 'prefix'] as const) {
      assert.deepEqual(checkRecoveredKv(acked, contents({ a: '2' }), consistency), []);
      assert.deepEqual(checkRecoveredKv(acked, contents({ a: '3' }), consistency), []);
    }
  });

  it('prefix: an unacknowledged write invoked before an acknowledged one must have survived', () => {
    const h = history((hh) => {
      hh.invoke({ type: 'put', key: 'a', value: '1' }); // in flight, then...
      hh.ack(hh.invoke({ type: 'put', key: 'b', value: '1' })); // ...a later write is acknowledged
    });
    assert.deepEqual(checkRecoveredKv(h, contents({ b: '1' }), 'per-key'), []);
    assert.match(checkRecoveredKv(h, contents({ b: '1' }), 'prefix').join(), /no prefix of the invoked writes through acknowledged write #1/);
    assert.deepEqual(checkRecoveredKv(h, contents({ a: '1', b: '1' }), 'prefix'), []);
  });

  it('rejects a lost write, an old value, a resurrected delete, phantoms', () => {
    assert.match(checkRecoveredKv(acked, contents({})).join(), /key "a": expected "2".*found \(absent\) \(acknowledged write lost\)/);
    assert.match(checkRecoveredKv(acked, contents({ a: '1' })).join(), /older, overwritten value/);
    assert.match(checkRecoveredKv(acked, contents({ a: '2', b: '1' })).join(), /key "b": expected \(absent\)/);
    assert.match(checkRecoveredKv(acked, contents({ a: '9' })).join(), /phantom value/);
    assert.match(checkRecoveredKv(acked, contents({ a: '2', zz: '1' })).join(), /key "zz": never written.*phantom key/);
  });

  it('rejects a partially applied batch and accepts all or nothing', () => {
    const batch = history((h) => {
      h.ack(h.invoke({ type: 'put', key: 'x', value: 'old' }));
      h.invoke({ type: 'batch', ops: [{ type: 'put', key: 'x', value: 'new' }, { type: 'put', key: 'y', value: 'new' }, { type: 'del', key: 'z' }] });
    });
    assert.deepEqual(checkRecoveredKv(batch, contents({ x: 'old' })), []);
    assert.deepEqual(checkRecoveredKv(batch, contents({ x: 'new', y: 'new' })), []);
    assert.match(checkRecoveredKv(batch, contents({ x: 'old', y: 'new' })).join(), /batch #1 \(invoked\) applied partially: visible on "y" but not on "x"/);
    assert.match(checkRecoveredKv(batch, contents({ x: 'new' })).join(), /applied partially: visible on "x" but not on "y"/);
  });

  it('prefix consistency rejects a state no prefix produces, which per-key accepts', () => {
    const h = history((hh) => {
      hh.invoke({ type: 'put', key: 'a', value: '1' });
      hh.invoke({ type: 'put', key: 'b', value: '1' });
    });
    // b's write survived but the earlier a's did not: fine per key, not a prefix.
    assert.deepEqual(checkRecoveredKv(h, contents({ b: '1' }), 'per-key'), []);
    assert.match(checkRecoveredKv(h, contents({ b: '1' }), 'prefix').join(), /no prefix/);
    assert.deepEqual(checkRecoveredKv(h, contents({ a: '1' }), 'prefix'), []);
  });

  it('prefix: a failed write may be skipped even before an acknowledged one', () => {
    const h = history((hh) => {
      hh.fail(hh.invoke({ type: 'put', key: 'a', value: '1' }));
      hh.ack(hh.invoke({ type: 'put', key: 'b', value: '1' }));
      hh.invoke({ type: 'put', key: 'c', value: '1' });
    });
    assert.deepEqual(checkRecoveredKv(h, contents({ b: '1' }), 'prefix'), []);
    assert.deepEqual(checkRecoveredKv(h, contents({ a: '1', b: '1', c: '1' }), 'prefix'), []);
    assert.match(checkRecoveredKv(h, contents({ a: '1', c: '1' }), 'prefix').join(), /key "b".*acknowledged write lost/);
    const notPrefix = history((hh) => {
      hh.fail(hh.invoke({ type: 'put', key: 'a', value: '1' }));
      hh.ack(hh.invoke({ type: 'put', key: 'b', value: '1' }));
      hh.invoke({ type: 'put', key: 'c', value: '1' });
      hh.invoke({ type: 'put', key: 'd', value: '1' });
    });
    assert.match(checkRecoveredKv(notPrefix, contents({ b: '1', d: '1' }), 'prefix').join(), /no prefix/);
  });

  it('binary keys and values are compared as bytes', () => {
    const h = history((hh) => hh.ack(hh.invoke({ type: 'put', key: Buffer.from([0, 255]), value: Buffer.from([1, 2]) })));
    assert.deepEqual(checkRecoveredKv(h, new Map([['00ff', Buffer.from([1, 2])]])), []);
    assert.match(checkRecoveredKv(h, new Map([['00ff', Buffer.from([1, 3])]])).join(), /key 0x00ff.*found 0x0103/);
  });
});

describe('choosePoints', () => {
  it('bounds the sweep deterministically and keeps the first and last point', () => {
    const points = choosePoints(1000, { seed: 5, maxPoints: 50 });
    assert.equal(points.length, 50);
    assert.equal(points[0], 0);
    assert.equal(points[49], 999);
    assert.deepEqual(points, [...points].sort((a, b) => a - b));
    assert.deepEqual(choosePoints(1000, { seed: 5, maxPoints: 50 }), points, 'same seed, same points');
    assert.notDeepEqual(choosePoints(1000, { seed: 6, maxPoints: 50 }), points);
    assert.deepEqual(choosePoints(10, { seed: 1, stride: 4 }), [0, 4, 8]);
    assert.deepEqual(choosePoints(10, { seed: 1, points: [7, 3, 3, 42] }), [3, 7]);
  });

  it('crash points cover every operation of a real sweep', async () => {
    const seen: number[] = [];
    await sweepCrashPoints({
      seed: 1,
      newRecord: () => undefined,
      workload: async (vfs, _record, { point }) => {
        if (point >= 0) seen.push(point);
        const file = await vfs.open('f', { create: true });
        await file.write(0, Buffer.from('x'));
        await file.sync();
        await file.close();
      },
      verify: async (recovered, _record, point) =>
        point.mode === 'lose-unsynced' && (await recovered.exists('f')) ? 'the file was never made durable by a directory sync' : undefined,
    });
    assert.deepEqual(seen, [0, 1, 2, 3]);
  });
});

describe('MemVfs + harness: the fault-free end point is checked too', () => {
  it('a store that never syncs fails at the end point with lose-unsynced', async () => {
    const summary = await crashSweep(LogStore, { skipFileSync: true }, { collectFailures: true });
    const end = summary.failures.find((failure) => failure.operation === undefined);
    assert.ok(end !== undefined, 'the fault-free run is verified');
    assert.equal(end.point, summary.ioOperations);
  });
});

describe('KV helpers on a real Engine', () => {
  it('KvHistory drives an engine and readAllEntries pages through all of it', async () => {
    const engine = new MemoryEngine();
    await engine.open();
    const history = new KvHistory();
    for (let i = 0; i < 2500; i++) await history.put(engine, `key${String(i).padStart(5, '0')}`, `v${i}`);
    await history.del(engine, 'key00007');
    await history.batch(engine, [{ type: 'put', key: Buffer.from([0xff]), value: 'last' }, { type: 'del', key: 'key00008' }]);
    const entries = await readAllEntries(engine, 1000);
    assert.equal(entries.length, 2499);
    assert.deepEqual(entries[0]?.[0], Buffer.from('key00000'));
    assert.deepEqual(entries.at(-1)?.[0], Buffer.from([0xff]));
    assert.ok(history.writes.every((write) => write.status === 'acknowledged'));
    assert.deepEqual(checkRecoveredKv(history, await collectContents(entries), 'prefix'), []);
    await engine.close();
    await assert.rejects(history.put(engine, 'x', 'y'));
    assert.equal(history.writes.at(-1)?.status, 'failed');
    assert.equal(history.anyErrorSeen, true);
    await assert.rejects(collectContents([['a', 'x'], ['a', 'y']]), /twice/);
  });
});

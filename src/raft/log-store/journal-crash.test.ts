/**
 * The node journal (journal.ts) under crashes and I/O errors: two group logs
 * share one journal (their saves run concurrently, so batches carry both),
 * with segments small enough that saves create segments and compactions
 * delete them, and a journal small enough to be checkpointed several times.
 * Crashed at every sampled I/O operation and recovered as after a power loss
 * ('lose-unsynced', 'torn', 'reorder'), recovery itself crashed once per
 * point; then EIO at every sampled operation. After each recovery (journal
 * replayed, then both logs opened) each log must hold exactly its
 * acknowledged state or that state with its in-flight operation applied,
 * and must take a new save that survives a reopen.
 *
 * Planted bugs that the sweep must catch: a journal that acknowledges before
 * its fsync; a journal whose open does not replay (acknowledged saves then
 * live only in segments nobody fsynced).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../../errors.js';
import { sweepCrashPoints, sweepIoErrors, type FaultPoint } from '../../../testkit/vfs/crash-harness.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import { LogHistory, applyUpdate, describeDifference, lastIndexOf, randomOperation, saveAsync } from '../../../testkit/raft-log/log-model.js';
import { SeededRandom, type Random } from '../../util/random.js';
import { JOURNAL_FILE, LogJournal } from './journal.js';
import { SegmentedLogStore } from './log-store.js';

const FULL = process.env['RAFT_LOG_CRASH_FULL'] === '1';
const ROOT = 'data';
const JOURNAL_DIR = 'data/raft-journal';
const DIRS = ['data/raft/7', 'data/raft/8'] as const;
const OPTIONS = { segmentBytesMax: 700, cacheBytesMax: 300 } as const;
const JOURNAL_BYTES_MAX = 4096;
const OPERATIONS = 30;

type Histories = readonly [LogHistory, LogHistory];

interface Planted {
  readonly acknowledgeBeforeSync?: boolean;
  /** Open without replaying: the journal file is deleted first (its records lost). */
  readonly skipReplay?: boolean;
}

async function openAll(vfs: MemVfs, planted: Planted = {}): Promise<{ journal: LogJournal; stores: SegmentedLogStore[] }> {
  if (planted.skipReplay === true && (await vfs.exists(`${JOURNAL_DIR}/${JOURNAL_FILE}`))) await vfs.unlink(`${JOURNAL_DIR}/${JOURNAL_FILE}`);
  const journal = await LogJournal.open(vfs, JOURNAL_DIR, ROOT, { bytesMax: JOURNAL_BYTES_MAX, ...(planted.acknowledgeBeforeSync === true ? { acknowledgeBeforeSync: true } : {}) });
  const stores: SegmentedLogStore[] = [];
  try {
    for (const dir of DIRS) stores.push(await SegmentedLogStore.open(vfs, dir, { ...OPTIONS, journal }));
  } catch (error) {
    await Promise.allSettled(stores.map((store) => store.close()));
    await journal.close();
    throw error;
  }
  return { journal, stores };
}

async function closeAll(opened: { journal: LogJournal; stores: SegmentedLogStore[] }): Promise<void> {
  for (const store of opened.stores) await store.close();
  await opened.journal.close();
}

async function workload(vfs: MemVfs, histories: Histories, random: Random, planted: Planted = {}): Promise<void> {
  const opened = await openAll(vfs, planted);
  for (let i = 0; i < OPERATIONS; i++) {
    // Both logs save at once: their records share journal batches.
    await Promise.all(opened.stores.map((store, s) => histories[s]!.run(store, randomOperation(histories[s]!.acknowledged, random, { dataBytesMax: 120, oversizedBytes: 900 }))));
  }
  await closeAll(opened);
}

async function verify(vfs: MemVfs, histories: Histories, point: FaultPoint, planted: Planted = {}): Promise<string | undefined> {
  const opened = await openAll(vfs, planted.skipReplay === true ? { skipReplay: true } : {});
  try {
    for (const [s, store] of opened.stores.entries()) {
      const violation = histories[s]!.check(store);
      if (violation !== undefined) return `log ${DIRS[s]}: ${violation}`;
    }
    if (point.recoveryCrashAt !== undefined) return undefined;
    const expected = [];
    for (const store of opened.stores) {
      const state = { hardState: store.hardState(), boundary: store.snapshotMeta(), entries: store.lastIndex() > store.snapshotMeta().index ? store.entries(store.firstIndex(), store.lastIndex() + 1, Number.MAX_SAFE_INTEGER) : [] };
      const term = Math.max(state.hardState.term, 1);
      const update = { snapshot: null, entries: [{ kind: 'normal' as const, index: lastIndexOf(state) + 1, term, data: Buffer.from('after recovery') }], hardState: { ...state.hardState, term } };
      await saveAsync(store, update);
      expected.push(applyUpdate(state, update));
    }
    await closeAll(opened);
    const reopened = await openAll(vfs);
    try {
      for (const [s, store] of reopened.stores.entries()) {
        const difference = describeDifference(store, expected[s]!);
        if (difference !== undefined) return `log ${DIRS[s]}: a save after recovery did not survive a reopen: ${difference}`;
      }
    } finally {
      await closeAll(reopened);
    }
    return undefined;
  } finally {
    await closeAll(opened);
  }
}

const newRecord = (): Histories => [new LogHistory(), new LogHistory()];

describe('raft log journal crash safety', () => {
  it('the workload shares batches, checkpoints, and crosses segments and compactions (the sweeps test what they claim)', async () => {
    const vfs = new MemVfs();
    const histories = newRecord();
    await workload(vfs, histories, new SeededRandom(3));
    const opened = await openAll(vfs);
    const figures = opened.stores.map((store) => store.stats());
    const replay = opened.journal.replay;
    await closeAll(opened);
    for (const [s, figure] of figures.entries()) {
      assert.ok(figure['segments']! >= 3, `log ${s}: segments ${figure['segments']}`);
      assert.ok(histories[s]!.acknowledged.boundary.index > 0, `log ${s}: no compaction or install happened`);
    }
    // A clean close leaves records in the journal (nothing fsynced the segments): the reopen replayed them.
    assert.ok(replay.records > 0, 'the reopen replayed nothing');
  });

  it('batches concurrent saves of several logs into one fsync, and checkpoints when full', async () => {
    const vfs = new MemVfs();
    const journal = await LogJournal.open(vfs, JOURNAL_DIR, ROOT, { bytesMax: JOURNAL_BYTES_MAX });
    const stores = await Promise.all(['data/raft/1', 'data/raft/2', 'data/raft/3', 'data/raft/4'].map((dir) => SegmentedLogStore.open(vfs, dir, { journal })));
    const entry = (index: number): { kind: 'normal'; index: number; term: number; data: Buffer } => ({ kind: 'normal', index, term: 1, data: Buffer.alloc(600, index) });
    for (let round = 1; round <= 6; round++) {
      await Promise.all(stores.map((store) => saveAsync(store, { snapshot: null, entries: [entry(round)], hardState: { term: 1, vote: 0, commit: 0 } })));
    }
    const figures = journal.stats();
    for (const store of stores) {
      assert.equal(store.stats()['fsyncs'], 0, 'a journaled save fsynced its own segment');
      assert.equal(store.stats()['journaled_saves'], 6);
    }
    assert.equal(figures['journal_commits'], 24);
    assert.ok(figures['journal_fsyncs']! <= 12, `24 concurrent saves (4 at a time) took ${figures['journal_fsyncs']} fsyncs`);
    assert.ok(figures['journal_checkpoints']! >= 1, 'a journal past its bound was not checkpointed');
    for (const store of stores) await store.close();
    await journal.close();
  });

  it('refuses to open when a synced batch is damaged, and takes damage in the last batch for a torn tail', async () => {
    // Three batches of two records each (two logs saving at once, three times), then a crash: nothing but the journal is synced.
    const build = async (): Promise<MemVfs> => {
      const vfs = new MemVfs();
      const journal = await LogJournal.open(vfs, JOURNAL_DIR, ROOT);
      const stores = await Promise.all(DIRS.map((dir) => SegmentedLogStore.open(vfs, dir, { journal })));
      for (let index = 1; index <= 3; index++) {
        await Promise.all(stores.map((store) => saveAsync(store, { snapshot: null, entries: [{ kind: 'normal', index, term: 1, data: Buffer.alloc(50, index) }], hardState: { term: 1, vote: 0, commit: 0 } })));
      }
      for (const store of stores) await store.close();
      await journal.close();
      return vfs;
    };
    const path = `${JOURNAL_DIR}/${JOURNAL_FILE}`;
    const damaged = await build();
    damaged.flipBit(path, 40, 0); // inside the first record's body: later batches follow
    await assert.rejects(LogJournal.open(damaged.recover('lose-unsynced'), JOURNAL_DIR, ROOT), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_ENGINE_CORRUPTION' && error.message.includes(JOURNAL_FILE));
    const torn = await build();
    const size = await torn.size(path);
    torn.flipBit(path, size - 10, 0); // the last record, in the last batch: a torn tail
    const recovered = torn.recover('lose-unsynced');
    const journal = await LogJournal.open(recovered, JOURNAL_DIR, ROOT);
    assert.equal(journal.replay.records, 5);
    assert.ok(journal.replay.tornBytes > 0);
    const stores = await Promise.all(DIRS.map((dir) => SegmentedLogStore.open(recovered, dir, { journal })));
    assert.deepEqual(stores.map((store) => store.lastIndex()).sort(), [2, 3]);
    for (const store of stores) await store.close();
    await journal.close();
  });

  it('never replays a destroyed log\'s records into a new log of the same group (a node that hosts a shard again)', async () => {
    const vfs = new MemVfs();
    const dir = 'data/raft/9';
    const journal = await LogJournal.open(vfs, JOURNAL_DIR, ROOT);
    const entry = (index: number, term: number): { kind: 'normal'; index: number; term: number; data: Buffer } => ({ kind: 'normal', index, term, data: Buffer.alloc(40, term) });
    const old = await SegmentedLogStore.open(vfs, dir, { journal });
    for (let index = 1; index <= 5; index++) await saveAsync(old, { snapshot: null, entries: [entry(index, 2)], hardState: { term: 2, vote: 0, commit: 0 } });
    await old.close();
    for (const name of await vfs.list(dir)) await vfs.unlink(`${dir}/${name}`); // the group destroyed here (hosted-groups' destroy)
    await vfs.syncDir(dir);
    const fresh = await SegmentedLogStore.open(vfs, dir, { journal });
    await saveAsync(fresh, { snapshot: null, entries: [entry(1, 3)], hardState: { term: 3, vote: 0, commit: 0 } });
    // Power loss now: the journal replays what it holds into the segments.
    const recovered = vfs.recover('lose-unsynced');
    const reopened = await LogJournal.open(recovered, JOURNAL_DIR, ROOT);
    const store = await SegmentedLogStore.open(recovered, dir, { journal: reopened });
    assert.equal(store.lastIndex(), 1, 'entries of the destroyed log came back in the new one');
    assert.equal(store.term(1), 3);
    await store.close();
    await reopened.close();
  });

  it('keeps every acknowledged save and compaction of every log, crashing at every I/O point', async (t) => {
    const summary = await sweepCrashPoints({
      seed: 3,
      ...(FULL ? {} : { maxPoints: 70 }),
      modes: ['lose-unsynced', 'torn', 'reorder'],
      crashDuringRecovery: true,
      newRecord,
      workload: (vfs, histories, context) => workload(vfs, histories, context.random),
      verify: (vfs, histories, point) => verify(vfs, histories, point),
    });
    t.diagnostic(`${summary.ioOperations} I/O operations; ${summary.points} crash points; ${summary.checks} recoveries checked`);
    assert.ok(summary.ioOperations > 100, `workload does ${summary.ioOperations} I/O operations`);
  });

  it('reports an I/O error at every point (once and persistent), stops, and loses nothing acknowledged', async (t) => {
    const summary = await sweepIoErrors({
      seed: 5,
      ...(FULL ? {} : { maxPoints: 40 }),
      newRecord,
      workload: async (vfs, histories, context) => {
        try {
          await workload(vfs, histories, context.random);
        } catch (error) {
          if (!isImpulseError(error)) throw error;
          histories[0].sawError();
        }
      },
      reachedCaller: (histories) => histories[0].anyErrorSeen,
      verify: (vfs, histories, point) => verify(vfs, histories, point),
    });
    t.diagnostic(`${summary.ioOperations} I/O operations; ${summary.points} error points; ${summary.checks} recoveries checked`);
  });

  for (const [name, planted] of [
    ['acknowledges a commit before its fsync', { acknowledgeBeforeSync: true }],
    ['is not replayed at open', { skipReplay: true }],
  ] as const) {
    it(`catches a planted bug: a journal that ${name}`, async () => {
      const summary = await sweepCrashPoints({
        seed: 3,
        maxPoints: 70,
        modes: ['lose-unsynced'],
        collectFailures: true,
        newRecord,
        workload: (vfs, histories, context) => workload(vfs, histories, context.random, planted),
        verify: (vfs, histories, point) => verify(vfs, histories, point, planted),
      });
      assert.ok(summary.failures.length > 0, `the sweep found nothing wrong with a journal that ${name}`);
    });
  }
});

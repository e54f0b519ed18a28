/**
 * The Raft log under crashes and I/O errors, on the crash-modelling MemVfs
 * and the shared sweeps (testkit/vfs/crash-harness.ts): a workload of saves
 * (appends, truncations, hard-state changes, snapshot installs), compactions
 * and reads from disk across many small segments, crashed at every sampled I/O
 * operation and recovered as after a power loss ('lose-unsynced', 'torn',
 * 'reorder') with recovery itself crashed once per point; then EIO at every
 * sampled operation. After each recovery the log must hold exactly the
 * acknowledged state, or the state with the in-flight operation applied
 * (saves are all-or-nothing), and must take a new save and reopen with it.
 *
 * Two planted bugs (skip the directory fsync of a new segment; acknowledge
 * before the fsync) must each make the sweep fail: that is how we know it looks.
 *
 * RAFT_LOG_CRASH_FULL=1 (or IMPULSE_CRASH_SWEEP=full) runs every point.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../../errors.js';
import { sweepCrashPoints, sweepIoErrors, type FaultPoint } from '../../../testkit/vfs/crash-harness.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import { LogHistory, applyUpdate, describeDifference, lastIndexOf, randomOperation, saveAsync } from '../../../testkit/raft-log/log-model.js';
import { SeededRandom, type Random } from '../../util/random.js';
import { SegmentedLogStore } from './log-store.js';
import type { LogStoreMutations } from './options.js';

const FULL = process.env['RAFT_LOG_CRASH_FULL'] === '1';
const DIR = 'raft/7';
/** Small segments: the workload crosses a dozen of them, and compactions delete some. */
const OPTIONS = { segmentBytesMax: 700, cacheBytesMax: 300 } as const;
const OPERATIONS = 36;

async function workload(vfs: MemVfs, history: LogHistory, random: Random, mutations: LogStoreMutations = {}): Promise<void> {
  const store = await SegmentedLogStore.open(vfs, DIR, { ...OPTIONS, mutations });
  for (let i = 0; i < OPERATIONS; i++) {
    await history.run(store, randomOperation(history.acknowledged, random, { dataBytesMax: 120, oversizedBytes: 900 }));
    // Now and then read the whole log back: older entries come from disk (readSync), where faults hit too.
    if (i % 6 === 5 && store.lastIndex() >= store.firstIndex()) store.entries(store.firstIndex(), store.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
  }
  await store.close();
}

/** Opens what survived, compares it with the record, then appends once more and checks that a reopen sees it. */
async function verify(vfs: MemVfs, history: LogHistory, point: FaultPoint): Promise<string | undefined> {
  const store = await SegmentedLogStore.open(vfs, DIR, OPTIONS);
  let reopened: SegmentedLogStore | undefined;
  try {
    const violation = history.check(store);
    if (violation !== undefined) return violation;
    // When the harness crashes the recovery itself, this vfs may crash at any later operation: check the state only.
    if (point.recoveryCrashAt !== undefined) return undefined;
    const state = {
      hardState: store.hardState(),
      boundary: store.snapshotMeta(),
      entries: store.lastIndex() > store.snapshotMeta().index ? store.entries(store.firstIndex(), store.lastIndex() + 1, Number.MAX_SAFE_INTEGER) : [],
    };
    const term = Math.max(state.hardState.term, 1);
    const update = { snapshot: null, entries: [{ kind: 'normal' as const, index: lastIndexOf(state) + 1, term, data: Buffer.from('after recovery') }], hardState: { ...state.hardState, term } };
    await saveAsync(store, update);
    await store.close();
    reopened = await SegmentedLogStore.open(vfs, DIR, OPTIONS);
    const difference = describeDifference(reopened, applyUpdate(state, update));
    return difference === undefined ? undefined : `a save after recovery did not survive a reopen: ${difference}`;
  } finally {
    await store.close();
    await reopened?.close();
  }
}

describe('raft log crash safety', () => {
  it('the workload crosses segments, truncations, installs and compactions (the sweeps test what they claim)', async () => {
    const vfs = new MemVfs();
    const history = new LogHistory();
    await workload(vfs, history, new SeededRandom(3));
    const store = await SegmentedLogStore.open(vfs, DIR, OPTIONS);
    const figures = store.stats();
    await store.close();
    assert.ok(figures['segments']! >= 3, `segments ${figures['segments']}`);
    assert.equal(store.recoveryReport.tornTail, null);
    assert.ok(history.acknowledged.boundary.index > 0, 'no compaction or install happened');
  });

  it('keeps every acknowledged save and compaction, all-or-nothing, crashing at every I/O point', async (t) => {
    const summary = await sweepCrashPoints({
      seed: 3,
      ...(FULL ? {} : { maxPoints: 70 }),
      modes: ['lose-unsynced', 'torn', 'reorder'],
      crashDuringRecovery: true,
      newRecord: () => new LogHistory(),
      workload: (vfs, history, context) => workload(vfs, history, context.random),
      verify,
    });
    t.diagnostic(`${summary.ioOperations} I/O operations; ${summary.points} crash points; ${summary.checks} recoveries checked`);
    assert.ok(summary.ioOperations > 100, `workload does ${summary.ioOperations} I/O operations`);
  });

  it('reports an I/O error at every point (once and persistent), stops, and loses nothing acknowledged', async (t) => {
    const summary = await sweepIoErrors({
      seed: 5,
      ...(FULL ? {} : { maxPoints: 40 }),
      newRecord: () => new LogHistory(),
      workload: async (vfs, history, context) => {
        try {
          await workload(vfs, history, context.random);
        } catch (error) {
          if (!isImpulseError(error)) throw error;
          history.sawError();
        }
      },
      reachedCaller: (history) => history.anyErrorSeen,
      verify,
    });
    t.diagnostic(`${summary.ioOperations} I/O operations; ${summary.points} error points; ${summary.checks} recoveries checked`);
  });

  for (const [name, mutations] of [
    ['skips the directory fsync when it creates a segment', { skipSegmentDirSync: true }],
    ['acknowledges a save before its fsync', { acknowledgeBeforeSync: true }],
  ] as const) {
    it(`catches a planted bug: a log that ${name}`, async () => {
      const summary = await sweepCrashPoints({
        seed: 3,
        maxPoints: 70,
        modes: ['lose-unsynced'],
        collectFailures: true,
        newRecord: () => new LogHistory(),
        workload: (vfs, history, context) => workload(vfs, history, context.random, mutations),
        verify,
      });
      assert.ok(summary.failures.length > 0, `the sweep found nothing wrong with a log that ${name}`);
    });
  }
});

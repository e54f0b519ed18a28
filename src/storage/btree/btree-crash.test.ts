/**
 * Crash safety of the btree engine through the shared harness
 * (testkit/vfs/crash-harness.ts): crash at every I/O operation of a workload that
 * splits, merges, overflows and frees pages, recover the disk (unsynced data
 * lost, torn, or a random subset of them kept), reopen, run `checkTree()`, and check that every
 * acknowledged write is there and nothing else is, with batches atomic and
 * the state a prefix of the issued writes. Then the same for an I/O error at
 * every operation, once and persistently.
 *
 * By default the crash sweep tests every point of one seeded workload and the
 * I/O-error sweep a deterministic sample of 100 points (about 10 s together);
 * BTREE_CRASH_FULL=1 tests every point for both, over more seeds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../../errors.js';
import { crashAtEveryIoPoint, ioErrorAtEveryPoint, readAllEntries, type KvHistory, type KvWriteOp } from '../../../testkit/storage/kv-crash.js';
import { isCrashError, type MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import type { Random } from '../../util/random.js';
import { BTreeEngine } from './btree-engine.js';

const FULL = process.env.BTREE_CRASH_FULL === '1';
const PAGE_BYTES = 512;

function open(vfs: MemVfs): Promise<BTreeEngine> {
  const engine = new BTreeEngine({ dataDir: 'db', vfs, pageBytes: PAGE_BYTES });
  return engine.open().then(() => engine);
}

const key = (index: number): string => `key-${String(index).padStart(4, '0')}`;
const text = (random: Random, length: number): string => {
  let out = '';
  for (let index = 0; index < length; index++) out += String.fromCharCode(97 + random.int(26));
  return out;
};

/**
 * ~30 commits: a bulk load that splits leaves and branches, overwrites,
 * values long enough for overflow runs, a group of concurrent writers, a
 * delete-most batch that merges pages back, and a reopen in the middle.
 * `tolerateErrors`: keep going after a failed write (I/O-error sweeps), else
 * let it escape (crash sweeps: the CrashError ends the run).
 */
// Exported so a failing point can be replayed from a script.
export async function workload(vfs: MemVfs, history: KvHistory, random: Random, tolerateErrors: boolean): Promise<void> {
  const guard = async (write: () => Promise<void>): Promise<void> => {
    try {
      await write();
    } catch (error) {
      if (!tolerateErrors || isCrashError(error)) throw error;
      assert.ok(isImpulseError(error), `a failed write must reject with an ImpulseError, got ${String(error)}`);
    }
  };
  let engine = await open(vfs);
  for (let round = 0; round < 6; round++) {
    const ops: KvWriteOp[] = [];
    for (let index = 0; index < 40; index++) ops.push({ type: 'put', key: key(round * 40 + index), value: text(random, 10 + random.int(30)) });
    await guard(() => history.batch(engine, ops));
  }
  for (let index = 0; index < 6; index++) await guard(() => history.put(engine, key(random.int(240)), text(random, random.chance(0.5) ? 700 : 20)));
  await guard(() => history.del(engine, key(3)));
  // Concurrent writers: group commit folds them into as few commits as it can.
  await Promise.all([0, 1, 2, 3].map((index) => guard(() => history.put(engine, `concurrent-${index}`, text(random, 15)))));
  try {
    await engine.close();
  } catch (error) {
    if (!tolerateErrors || isCrashError(error)) throw error;
    history.sawError();
  }
  engine = await open(vfs);
  const deletes: KvWriteOp[] = [];
  for (let index = 0; index < 240; index++) if (index % 9 !== 0) deletes.push({ type: 'del', key: key(index) });
  await guard(() => history.batch(engine, deletes.slice(0, 110)));
  await guard(() => history.batch(engine, deletes.slice(110)));
  for (let index = 0; index < 5; index++) await guard(() => history.put(engine, key(1000 + index), text(random, 5 + random.int(600))));
  try {
    await engine.close();
  } catch (error) {
    if (!tolerateErrors || isCrashError(error)) throw error;
    history.sawError();
  }
}

/** Reopens, checks the tree's invariants, returns every entry. */
export async function recover(vfs: MemVfs): Promise<Array<[Buffer, Buffer]>> {
  const engine = await open(vfs);
  try {
    await engine.checkTree();
    return await readAllEntries(engine);
  } finally {
    await engine.close();
  }
}

describe('btree crash safety (shared crash harness)', () => {
  // Every I/O point of the workload (about 200) by default: it takes a few seconds. BTREE_CRASH_FULL=1
  // adds more seeds (different values and different torn-write choices).
  const crashSeeds = FULL ? [4242, 1, 2, 3, 5, 8] : [4242];
  for (const seed of crashSeeds) {
    it(`survives a crash at every I/O operation (seed ${seed}): acknowledged writes kept, nothing phantom, checkTree passes`, async () => {
      const summary = await crashAtEveryIoPoint({
        seed,
        consistency: 'prefix',
        // 'reorder' keeps a random subset of unsynced writes: it is what shows that the fsync
        // between the data pages and the meta page is needed.
        // 'reorder-dirs' for the creation's rename (an unsynced rename may be lost).
        modes: ['lose-unsynced', 'torn', 'reorder', 'reorder-dirs'],
        // Opening writes (it rewrites a torn meta copy, and fsyncs): crash there too.
        crashDuringRecovery: true,
        workload: (vfs, history, context) => workload(vfs, history, context.random, false),
        recover: (vfs) => recover(vfs),
      });
      assert.ok(summary.ioOperations > 100, `workload too small: ${summary.ioOperations} I/O operations`);
      assert.equal(summary.checks, 4 * (summary.ioOperations + 1));
    });
  }

  it('an I/O error at every operation (once and persistent) reaches the caller; reopening finds acknowledged data', async () => {
    const summary = await ioErrorAtEveryPoint({
      seed: 777,
      ...(FULL ? {} : { maxPoints: 100 }),
      // A failed write may be applied or not (a meta write that reached the disk although it
      // reported an error), and later acknowledged writes must come on top of either.
      consistency: 'prefix',
      workload: (vfs, history, context) => workload(vfs, history, context.random, true),
      recover: (vfs) => recover(vfs),
    });
    // Every chosen point was run once and persistently, each reopened after a process crash
    // (keep-unsynced) and after a power loss (lose-unsynced), and each reopen was verified.
    assert.ok(summary.ioOperations > 100, `workload too small: ${summary.ioOperations} I/O operations`);
    assert.equal(summary.points, FULL ? summary.ioOperations : 100);
    assert.deepEqual(summary.modes, ['keep-unsynced', 'lose-unsynced']);
    assert.equal(summary.checks, summary.points * 2 * 2);
    assert.deepEqual(summary.failures, []);
  });
});

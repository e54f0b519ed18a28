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
import type { WriteOp } from '../engine.js';
import { BTreeEngine, type BTreeMutations } from './btree-engine.js';

const FULL = process.env.BTREE_CRASH_FULL === '1';
const PAGE_BYTES = 512;

function open(vfs: MemVfs, mutations: BTreeMutations = {}): Promise<BTreeEngine> {
  const engine = new BTreeEngine({ dataDir: 'db', vfs, pageBytes: PAGE_BYTES, mutations });
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
export async function workload(vfs: MemVfs, history: KvHistory, random: Random, tolerateErrors: boolean, mutations: BTreeMutations = {}): Promise<void> {
  const guard = async (write: () => Promise<void>): Promise<void> => {
    try {
      await write();
    } catch (error) {
      if (!tolerateErrors || isCrashError(error)) throw error;
      assert.ok(isImpulseError(error), `a failed write must reject with an ImpulseError, got ${String(error)}`);
    }
  };
  let engine = await open(vfs, mutations);
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
  engine = await open(vfs, mutations);
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

/**
 * Batches written without sync, every fourth one synced (which makes it and
 * every batch before it durable: only then are they acknowledged), over a
 * reopen: unsynced commits share a meta slot, free pages the durable base
 * still needs, and reach the disk in any order.
 */
export async function unsyncedWorkload(vfs: MemVfs, history: KvHistory, random: Random, mutations: BTreeMutations = {}): Promise<void> {
  for (let session = 0; session < 2; session++) {
    const engine = await open(vfs, mutations);
    const unacknowledged: number[] = [];
    for (let round = 0; round < 12; round++) {
      const ops: KvWriteOp[] = [];
      for (let index = 0; index < 4 + random.int(12); index++) ops.push({ type: 'put', key: key(random.int(90)), value: text(random, 10 + random.int(random.chance(0.1) ? 700 : 40)) });
      for (let index = 0; index < random.int(8); index++) ops.push({ type: 'del', key: key(random.int(90)) });
      if (round % 4 === 3) {
        await history.batch(engine, ops);
        for (const id of unacknowledged.splice(0)) history.ack(id);
      } else {
        const id = history.invoke({ type: 'batch', ops });
        const engineOps: WriteOp[] = ops.map((op) => (op.type === 'put' ? { type: 'put', key: Buffer.from(op.key), value: Buffer.from(op.value) } : { type: 'del', key: Buffer.from(op.key) }));
        await engine.batch(engineOps, { sync: false });
        unacknowledged.push(id);
      }
    }
    await engine.close();
    // A clean close syncs: everything written so far is durable.
    for (const id of unacknowledged) history.ack(id);
  }
}

/** Reopens, checks the tree's invariants, returns every entry. */
export async function recover(vfs: MemVfs, mutations: BTreeMutations = {}): Promise<Array<[Buffer, Buffer]>> {
  const engine = await open(vfs, mutations);
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

  it('survives a crash at every I/O operation of unsynced commits with a sync every fourth: synced writes kept, unsynced ones a prefix', async () => {
    const summary = await crashAtEveryIoPoint({
      seed: 99,
      consistency: 'prefix',
      modes: ['lose-unsynced', 'torn', 'reorder', 'reorder-dirs'],
      crashDuringRecovery: true,
      workload: (vfs, history, context) => unsyncedWorkload(vfs, history, context.random),
      recover: (vfs) => recover(vfs),
    });
    assert.ok(summary.ioOperations > 60, `workload too small: ${summary.ioOperations} I/O operations`);
  });

  // Planted bugs in the one-fsync commit: each must make the sweeps above fail.
  const planted: Array<{ readonly mutation: BTreeMutations; readonly unsynced: boolean }> = [
    // Opening takes the newest meta page without proving its pages: a commit cut short by the crash is opened.
    { mutation: { trustNewestMeta: true }, unsynced: false },
    // Pages unsynced commits free are reused before a sync: the durable base gets overwritten.
    { mutation: { reuseUnsyncedFreedPages: true }, unsynced: true },
    // Commits write meta slot txn % 2: an unsynced commit overwrites the durable base's meta page.
    { mutation: { metaSlotByTxn: true }, unsynced: true },
  ];
  for (const { mutation, unsynced } of planted) {
    it(`catches the planted bug ${Object.keys(mutation).join()}`, async () => {
      const summary = await crashAtEveryIoPoint({
        seed: unsynced ? 99 : 4242,
        consistency: 'prefix',
        modes: ['reorder'],
        collectFailures: true,
        workload: (vfs, history, context) => (unsynced ? unsyncedWorkload(vfs, history, context.random, mutation) : workload(vfs, history, context.random, false, mutation)),
        recover: (vfs) => recover(vfs, mutation),
      });
      assert.ok(summary.failures.length > 0, 'the sweep let the planted bug through');
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

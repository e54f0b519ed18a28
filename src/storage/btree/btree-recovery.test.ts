/**
 * Opening a btree file honestly (recovery.ts): a crash during a meta write is
 * told apart from damage to synced meta pages; one damaged copy costs nothing;
 * a damaged slot refuses to start unless recovery 'previous-commit' accepts
 * the rollback, which is verified, reported and logged; a missing file is not
 * silently replaced by an empty store; and what a restarted process found is
 * made durable before anything is written over it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../../errors.js';
import { SeededRandom } from '../../util/random.js';
import { isCrashError, MemVfs, type FaultAction, type FaultPolicy } from '../../../testkit/vfs/mem-vfs.js';
import type { Vfs } from '../../vfs/vfs.js';
import { BTREE_FILE_NAME, BTreeEngine, type BTreeEngineOptions, type BTreeLog } from './btree-engine.js';
import { decodeMeta, encodeMetaPage, FORMAT_VERSION, META_INLINE_FREE_MAX, metaPage, slotOf, type Meta } from './meta.js';
import { encodeFreeListPage, encodeLeaf, PageGeometry, sealPage } from './page.js';
import { chooseMeta, classifyMetaPages } from './recovery.js';

const DIR = 'db';
const FILE = `${DIR}/${BTREE_FILE_NAME}`;
const PAGE = 512;

async function openEngine(vfs: Vfs, options: Partial<BTreeEngineOptions> = {}): Promise<BTreeEngine> {
  const engine = new BTreeEngine({ dataDir: DIR, vfs, pageBytes: PAGE, ...options });
  await engine.open();
  return engine;
}

/** The committed version on disk, as opening would choose it. */
async function readMeta(vfs: Vfs): Promise<Meta> {
  const file = await vfs.open(FILE);
  try {
    return (await chooseMeta(file, FILE, PAGE, 'refuse')).meta;
  } finally {
    await file.close();
  }
}

const text = (value: string): Buffer => Buffer.from(value);

/** A store whose newest commit (put b) is the one the tests damage; the commit before it holds only a. */
async function twoCommits(): Promise<{ vfs: MemVfs; meta: Meta }> {
  const vfs = new MemVfs();
  const engine = await openEngine(vfs);
  await engine.put(text('a'), text('1'));
  await engine.put(text('b'), text('2'));
  await engine.close();
  return { vfs, meta: await readMeta(vfs) };
}

const isCorruption = (pattern: RegExp) => (error: unknown): boolean => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && pattern.test(error.message);

describe('btree recovery: one damaged meta copy costs nothing', () => {
  // Offsets inside a meta page: 45 is in the txn field, 300 in the zero tail; both fail the checksum.
  for (const copy of [0, 1]) {
    for (const offset of [45, 300]) {
      it(`a flipped bit at byte ${offset} of copy ${copy} of the newest slot: the newest commit is kept and the copy rewritten`, async () => {
        const { vfs, meta } = await twoCommits();
        vfs.flipBit(FILE, metaPage(slotOf(meta.txn), copy) * PAGE + offset, 2);
        const infos: string[] = [];
        let engine = await openEngine(vfs, { log: { info: (_fields, message) => infos.push(message), warn: () => assert.fail('a repair is not a warning') } });
        assert.equal(infos.length, 1);
        assert.match(infos[0]!, new RegExp(`rewrote meta page ${metaPage(slotOf(meta.txn), copy)} with commit ${meta.txn}: meta page \\d failed its checksum`));
        assert.deepEqual(await engine.get(text('b')), text('2'));
        assert.equal(engine.recovery?.openedTxn, meta.txn);
        assert.equal(engine.recovery?.metaPagesRepaired, 1);
        assert.equal(engine.recovery?.rolledBack, undefined);
        const figures = (await engine.stats()).figures;
        assert.equal(figures.btree_recovery_meta_pages_repaired, 1);
        assert.equal(figures.btree_recovery_rolled_back, 0);
        await engine.close();
        engine = await openEngine(vfs);
        assert.equal(engine.recovery?.metaPagesRepaired, 0, 'the copy was rewritten by the first open');
        assert.deepEqual(await engine.get(text('b')), text('2'));
        await engine.checkTree();
        await engine.close();
      });
    }
  }

  it('a damaged copy of the older slot is rewritten too, and nothing is lost', async () => {
    const { vfs, meta } = await twoCommits();
    vfs.flipBit(FILE, metaPage(slotOf(meta.txn + 1), 1) * PAGE + 45, 0);
    const engine = await openEngine(vfs);
    assert.deepEqual(await engine.get(text('b')), text('2'));
    assert.equal(engine.recovery?.metaPagesRepaired, 1);
    await engine.close();
  });
});

describe('btree recovery: a damaged meta slot', () => {
  it('both copies of the newest slot damaged: refuses to start, names the file and the slot, and writes nothing', async () => {
    const { vfs, meta } = await twoCommits();
    const slot = slotOf(meta.txn);
    // A flipped bit in the zero tail: the checksum fails, the fields still say what the slot held.
    for (const copy of [0, 1]) vfs.flipBit(FILE, metaPage(slot, copy) * PAGE + 300, 1);
    const before = await vfs.readFile(FILE);
    await assert.rejects(
      openEngine(vfs),
      isCorruption(new RegExp(`${FILE}: both copies of meta slot ${slot} .*damaged .*claims, unverified: commit ${meta.txn}, 2 keys.*previous-commit`)),
    );
    assert.deepEqual(await vfs.readFile(FILE), before, 'a refused open changed the file');
  });

  it("recovery 'previous-commit' starts from the previous commit after verifying it, reports and logs the rollback; later opens need no flag", async () => {
    const { vfs, meta } = await twoCommits();
    for (const copy of [0, 1]) vfs.flipBit(FILE, metaPage(slotOf(meta.txn), copy) * PAGE + 45, 1);
    const warnings: string[] = [];
    const log: BTreeLog = { info: () => undefined, warn: (_fields, message) => warnings.push(message) };
    let engine = await openEngine(vfs, { recovery: 'previous-commit', log });
    assert.deepEqual(await engine.get(text('a')), text('1'));
    assert.equal(await engine.get(text('b')), undefined, 'the damaged commit is the one rolled back');
    assert.equal(engine.recovery?.openedTxn, meta.txn - 1);
    assert.equal(engine.recovery?.rolledBack?.damagedSlot, slotOf(meta.txn));
    assert.equal((await engine.stats()).figures.btree_recovery_rolled_back, 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, new RegExp(`started from commit ${meta.txn - 1} .*commit ${meta.txn}, if it had been acknowledged, is lost`));
    await engine.checkTree();
    await engine.put(text('c'), text('3'));
    await engine.close();
    engine = await openEngine(vfs);
    assert.equal(engine.recovery?.metaPagesRepaired, 0);
    assert.deepEqual(await engine.get(text('c')), text('3'));
    await engine.checkTree();
    await engine.close();
  });

  it("recovery 'previous-commit' refuses when a later commit already wrote over the previous version's pages", async () => {
    const { vfs, meta } = await twoCommits();
    const file = await vfs.open(FILE);
    const previousPage = metaPage(slotOf(meta.txn - 1), 0);
    const previous = decodeMeta(await file.read(previousPage * PAGE, PAGE), previousPage);
    assert.ok(typeof previous !== 'string' && previous.txn === meta.txn - 1 && previous.root !== 0);
    // What an unfinished commit after the damaged one would leave: the previous root rewritten (validly) by commit txn + 1.
    await file.write(previous.root * PAGE, encodeLeaf(new PageGeometry(PAGE), previous.root, meta.txn + 1, [text('z')], [text('9')], []));
    await file.close();
    for (const copy of [0, 1]) vfs.flipBit(FILE, metaPage(slotOf(meta.txn), copy) * PAGE + 45, 1);
    await assert.rejects(
      openEngine(vfs, { recovery: 'previous-commit' }),
      isCorruption(new RegExp(`cannot start from commit ${meta.txn - 1}: its tree does not verify .*written by commit ${meta.txn + 1}`)),
    );
  });

  it("every meta page damaged: refuses to start, also with recovery 'previous-commit'", async () => {
    const { vfs } = await twoCommits();
    for (let page = 0; page < 4; page++) vfs.flipBit(FILE, page * PAGE + 45, 1);
    for (const recovery of ['refuse', 'previous-commit'] as const) {
      await assert.rejects(openEngine(vfs, { recovery }), isCorruption(/no valid meta page/));
    }
  });

  it('an unknown recovery mode is a configuration error', () => {
    assert.throws(
      () => new BTreeEngine({ dataDir: DIR, vfs: new MemVfs(), recovery: 'skip-everything' as 'refuse' }),
      (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'),
    );
  });
});

describe('btree recovery: a crash during a meta write is never taken for damage', () => {
  // Slot 1 holds commit 41 in both copies; commit 42 writes slot 0, whose copies held commit 40.
  const meta = (txn: number): Meta => ({ txn, pageBytes: PAGE, root: 0, depth: 0, pageCount: 4, freeListPage: 0, freeCount: 0, inlineFree: [], keyCount: txn, baseTxn: txn - 1, proofPages: 0, proofDigest: 0 });
  type Outcome = 'old' | 'new' | 'torn';
  const read = (outcome: Outcome, page: number): Meta | string => (outcome === 'old' ? meta(40) : outcome === 'new' ? meta(42) : `meta page ${page} failed its checksum`);
  const outcomes: readonly Outcome[] = ['old', 'new', 'torn'];

  for (const copy0 of outcomes) {
    for (const copy1 of outcomes) {
      const bothTorn = copy0 === 'torn' && copy1 === 'torn';
      it(`copies of the slot being written: ${copy0} / ${copy1} → ${bothTorn ? 'refused (not a crash outcome)' : 'a consistent version, no refusal'}`, () => {
        const reads = [read(copy0, 0), read(copy1, 1), meta(41), meta(41)];
        if (bothTorn) {
          assert.throws(() => classifyMetaPages(FILE, reads, 'refuse'), isCorruption(/both copies of meta slot 0/));
          return;
        }
        const choice = classifyMetaPages(FILE, reads, 'refuse');
        // Commit 42 counts once either copy holds it (its data pages were synced before its meta write).
        assert.equal(choice.meta.txn, copy0 === 'new' || copy1 === 'new' ? 42 : 41);
        assert.equal(choice.rollback, undefined);
        const expectedRepairs = [copy0, copy1].filter((outcome) => outcome !== 'new' && (copy0 === 'new' || copy1 === 'new' || outcome === 'torn')).length;
        assert.equal(choice.repairs.length, expectedRepairs);
      });
    }
  }

  it('after an acknowledged commit, damage to any single meta page keeps that commit', () => {
    for (let damaged = 0; damaged < 4; damaged++) {
      const reads: Array<Meta | string> = [meta(42), meta(42), meta(41), meta(41)];
      reads[damaged] = `meta page ${damaged} failed its checksum`;
      const choice = classifyMetaPages(FILE, reads, 'refuse');
      assert.equal(choice.meta.txn, 42);
      assert.deepEqual(
        choice.repairs.map((repair) => [repair.page, repair.meta.txn]),
        [[damaged, damaged < 2 ? 42 : 41]],
      );
    }
  });
});

describe('btree recovery: never a new, empty store over existing data', () => {
  it('refuses when btree.db is missing but the directory holds other files, naming what is missing', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    await engine.put(text('a'), text('1'));
    await engine.close();
    await vfs.rename(FILE, `${DIR}/btree.db.bak`);
    await assert.rejects(openEngine(vfs), isCorruption(new RegExp(`${FILE}: is missing, but ${DIR} holds btree.db.bak`)));
    assert.equal(await vfs.exists(FILE), false, 'no empty store was created');
  });

  it('a directory holding only the leftover of an interrupted creation is a new store', async () => {
    const vfs = new MemVfs();
    await vfs.mkdir(DIR);
    const leftover = await vfs.open(`${FILE}.init`, { create: true });
    await leftover.write(0, Buffer.alloc(100, 7));
    await leftover.close();
    const engine = await openEngine(vfs);
    await engine.put(text('a'), text('1'));
    assert.deepEqual(await engine.get(text('a')), text('1'));
    await engine.close();
  });

  it('a file of the first format is refused, naming the format version', async () => {
    const vfs = new MemVfs();
    await vfs.mkdir(DIR);
    const file = await vfs.open(FILE, { create: true });
    for (let page = 0; page < 4; page++) {
      const bytes = encodeMetaPage(PAGE, page, meta0());
      bytes.writeUInt32LE(1, 24 + 8);
      sealPage(bytes);
      await file.write(page * PAGE, bytes);
    }
    await file.close();
    await assert.rejects(openEngine(vfs), isCorruption(new RegExp(`format version 1; this impulse reads versions 2 to ${FORMAT_VERSION} only`)));
  });
});

function meta0(): Meta {
  return { txn: 0, pageBytes: PAGE, root: 0, depth: 0, pageCount: 4, freeListPage: 0, freeCount: 0, inlineFree: [], keyCount: 0, baseTxn: 0, proofPages: 0, proofDigest: 0 };
}

/** A fault on the `nth` file sync from now on (1 = the next one). */
function onSync(nth: number, action: FaultAction): FaultPolicy {
  let syncs = 0;
  return { name: `${action} on sync ${nth} from now`, decide: (op) => (op.operation === 'file.sync' && ++syncs === nth ? action : undefined) };
}

describe('btree recovery: what a restarted process found is made durable before it is written over', () => {
  it('a process dies between its meta write and fsync; the next process writes, then the power fails: nothing is corrupt', async () => {
    for (let seed = 1; seed <= 24; seed++) {
      const vfs = new MemVfs({ random: new SeededRandom(seed) });
      const first = await openEngine(vfs);
      await first.put(text('a'), text('1'));
      await first.put(text('a'), text('2')); // frees the first leaf
      // The next commit's meta write reaches the OS but its fsync fails (a process that died right there).
      vfs.inject(onSync(1, 'error'));
      await assert.rejects(first.put(text('b'), text('3')));
      await first.close();
      // The OS still holds that meta write: a new process on the same disk opens it.
      const second = await openEngine(vfs);
      assert.deepEqual(await second.get(text('b')), text('3'));
      // Its first commit reuses pages of the version before; the power fails before that commit's fsync.
      vfs.inject(onSync(1, 'crash'));
      await assert.rejects(second.put(text('c'), text('4')), isCrashError);
      const engine = await openEngine(vfs.recover('reorder'));
      await engine.checkTree();
      assert.deepEqual(await engine.get(text('a')), text('2'));
      assert.deepEqual(await engine.get(text('b')), text('3'), `seed ${seed}: the version the second process had seen was lost`);
      await engine.close();
    }
  });
});

describe('btree recovery: a commit whose pages did not all reach the disk (commit-proof.ts)', () => {
  /** Meta slot `slot` as written (copy 0), not as opening would choose. */
  async function slotMeta(vfs: Vfs, slot: number): Promise<Meta> {
    const file = await vfs.open(FILE);
    try {
      const read = decodeMeta(await file.read(metaPage(slot, 0) * PAGE, PAGE), metaPage(slot, 0));
      assert.ok(typeof read !== 'string', String(read));
      return read;
    } finally {
      await file.close();
    }
  }

  it('a power loss that keeps the meta page but not every page opens the last synced commit, and says so', async () => {
    let discarded = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const vfs = new MemVfs({ random: new SeededRandom(seed) });
      const first = await openEngine(vfs);
      await first.put(text('a'), text('1'));
      // Enough keys that the commit writes several pages (splits), then the power fails before its fsync.
      vfs.inject(onSync(1, 'crash'));
      await assert.rejects(first.batch(Array.from({ length: 30 }, (_, index) => ({ type: 'put' as const, key: text(`k${String(index).padStart(2, '0')}`), value: text('v'.repeat(20)) }))), isCrashError);
      const warnings: string[] = [];
      const log: BTreeLog = { info: () => undefined, warn: (_fields, message) => warnings.push(message) };
      const engine = await openEngine(vfs.recover('reorder'), { log });
      await engine.checkTree();
      assert.deepEqual(await engine.get(text('a')), text('1'));
      const batchKeys = (await engine.range({ limit: 100 })).length - 1;
      assert.ok(batchKeys === 0 || batchKeys === 30, `seed ${seed}: a torn batch (${batchKeys} of 30 keys)`);
      if (engine.recovery?.discardedUnsyncedTxn !== undefined) {
        discarded++;
        assert.equal(batchKeys, 0);
        assert.equal(engine.recovery.discardedUnsyncedTxn, 2);
        assert.equal((await engine.stats()).figures.btree_recovery_discarded_unsynced, 1);
        assert.match(warnings.join('\n'), /commit 2 \(31 keys\) is not all on disk .*started from commit 1 \(1 keys\), the last synced commit/);
        assert.equal(engine.recoveryReport?.dataLost, false);
      }
      await engine.close();
    }
    assert.ok(discarded >= 5, `only ${discarded} of 40 power losses kept the meta page without all the pages`);
  });

  it('when the newest commit is not all on disk and the synced commit below it is damaged too, opening refuses', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    await engine.put(text('a'), text('1'));
    await engine.put(text('b'), text('2'));
    await engine.put(text('c'), text('3'));
    // The power fails with all three synced (no clean close): commit 3 names commit 2 as its base.
    const disk = vfs.recover('lose-unsynced');
    const [newest, base] = [await slotMeta(disk, slotOf(3)), await slotMeta(disk, slotOf(2))];
    assert.deepEqual([newest.txn, newest.baseTxn, base.txn], [3, 2, 2]);
    disk.flipBit(FILE, newest.root * PAGE + 100, 1);
    disk.flipBit(FILE, base.root * PAGE + 100, 1);
    await assert.rejects(openEngine(disk), isCorruption(/commit 2 was synced but its pages are damaged .*commit 3 is not all on disk/));
  });

  it('known limit: damage to the newest commit before any later commit or a clean close is taken for an interrupted commit (rolled back, warned)', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    await engine.put(text('a'), text('1'));
    await engine.put(text('b'), text('2'));
    const disk = vfs.recover('lose-unsynced');
    disk.flipBit(FILE, (await slotMeta(disk, slotOf(2))).root * PAGE + 100, 1);
    const warnings: string[] = [];
    const reopened = await openEngine(disk, { log: { info: () => undefined, warn: (_fields, message) => warnings.push(message) } });
    assert.equal(reopened.recovery?.discardedUnsyncedTxn, 2);
    assert.equal(await reopened.get(text('b')), undefined);
    assert.match(warnings.join('\n'), /commit 2 \(2 keys\) is not all on disk/);
    await reopened.close();
  });

  it('after a clean close, damage to the newest commit is reported when read, never rolled back', async () => {
    const { vfs, meta } = await twoCommits();
    assert.equal(meta.baseTxn, meta.txn, 'the clean close seals the newest commit');
    vfs.flipBit(FILE, meta.root * PAGE + 100, 1);
    const engine = await openEngine(vfs);
    assert.equal(engine.recovery?.discardedUnsyncedTxn, undefined);
    await assert.rejects(engine.get(text('b')), isCorruption(/failed its checksum/));
    await engine.close();
  });
});

describe('btree: unsynced commits are bounded', () => {
  const key = (index: number): Buffer => text(`key-${String(index).padStart(5, '0')}`);

  it('with sync none, sequential writes reuse the pages unsynced commits wrote and freed: no forced sync, the file stays small, a power loss keeps a prefix', async () => {
    const vfs = new MemVfs({ random: new SeededRandom(7) });
    const engine = await openEngine(vfs, { sync: 'none' });
    const writes = 2500;
    for (let index = 0; index < writes; index++) await engine.put(key(index), text('value'));
    for (let index = 0; index < writes; index += 2) await engine.del(key(index));
    const { figures } = await engine.stats();
    // Each commit rewrites the leaf, branch and free-list page the previous unsynced commit wrote: those pages are
    // in no version opening can fall back to, so they are reused at once (without that, 256 freed pages forced a sync).
    assert.equal(figures.btree_syncs, 0, JSON.stringify(figures));
    assert.equal(figures.btree_unsynced_commits, writes + writes / 2);
    assert.ok(figures.btree_pages_free! < 20, JSON.stringify(figures));
    await engine.checkTree();
    const reopened = await openEngine(vfs.recover('reorder'));
    const keys = (await reopened.range({ limit: 10_000 })).map((entry) => entry.key.toString());
    // Whatever reached the disk, the store opens at the (empty) base or at a proven commit: a prefix of the writes.
    const expected = (commits: number): string[] => {
      const live = new Set<number>();
      for (let index = 0; index < Math.min(commits, writes); index++) live.add(index);
      for (let index = 0; index < commits - writes; index++) live.delete(2 * index);
      return [...live].sort((a, b) => a - b).map((index) => key(index).toString());
    };
    // Commit n (txn id n) is write n: the opened txn id says which prefix to expect.
    const openedTxn = (await reopened.stats()).figures.btree_txn_id!;
    assert.ok(openedTxn <= writes + writes / 2);
    assert.deepEqual(keys, expected(openedTxn));
    await reopened.checkTree();
    await reopened.close();
  });

  it('with sync none, a sync comes once 256 pages of the synced base were freed: the file stops growing, and a power loss keeps a prefix', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs, { sync: 'none' });
    const keys = 20_000;
    // Synced: every leaf (~1,000 of them) belongs to the durable base.
    const batch = 1000;
    for (let first = 0; first < keys; first += batch) {
      await engine.batch(Array.from({ length: batch }, (_, index) => ({ type: 'put' as const, key: key(first + index), value: text('v0') })), { sync: true });
    }
    const syncedBatches = keys / batch;
    // Unsynced updates striding across the leaves: each frees base pages, which wait for a sync.
    const random = new SeededRandom(3);
    const updates = 1500;
    for (let index = 0; index < updates; index++) await engine.put(key(random.int(keys)), text(`v${index}`));
    const { figures } = await engine.stats();
    // Each update frees a base leaf it has not touched before (and, early on, branches): ~1,300 base pages in all.
    assert.ok(figures.btree_syncs! >= syncedBatches + 3, `${figures.btree_syncs! - syncedBatches} syncs after ${updates} unsynced updates`);
    assert.ok(figures.btree_unsynced_commits! < updates);
    // Freed base pages wait for a sync, never longer: the file holds the tree plus about the bound.
    assert.ok(figures.btree_pages_free! < 256 + 100, JSON.stringify(figures));
    await engine.checkTree();
    const reopened = await openEngine(vfs.recover('lose-unsynced'));
    assert.equal((await reopened.stats()).keyCount, keys);
    await reopened.checkTree();
    await reopened.close();
  });
});

describe('btree: files of earlier formats', () => {
  it('format 2 files open (their commits count as synced), and the next commit writes the current format', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    await engine.put(text('a'), text('1'));
    await engine.close();
    // Rewrite the meta pages as format 2 wrote them: version 2, nothing after the key count.
    const file = await vfs.open(FILE);
    for (let page = 0; page < 4; page++) {
      const bytes = await file.read(page * PAGE, PAGE);
      bytes.writeUInt32LE(2, 24 + 8);
      bytes.fill(0, 76);
      sealPage(bytes);
      await file.write(page * PAGE, bytes);
    }
    await file.close();
    const reopened = await openEngine(vfs);
    assert.deepEqual(await reopened.get(text('a')), text('1'));
    await reopened.put(text('b'), text('2'));
    await reopened.checkTree();
    await reopened.close();
    const meta = await readMeta(vfs);
    assert.equal(meta.txn, 2);
    const raw = await vfs.open(FILE);
    assert.equal((await raw.read(metaPage(slotOf(2), 0) * PAGE, PAGE)).readUInt32LE(24 + 8), FORMAT_VERSION);
    await raw.close();
  });

  it('format 3 files (every free list in pages of its own) open, and the next commit moves a short free list into the meta page', async () => {
    const key = (index: number): Buffer => text(`key-${String(index).padStart(5, '0')}`);
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    // A tree of several leaves, then deletes: the merges free pages, so the free list is not empty.
    await engine.batch(Array.from({ length: 400 }, (_, index) => ({ type: 'put' as const, key: key(index), value: text('v') })));
    await engine.batch(Array.from({ length: 300 }, (_, index) => ({ type: 'del' as const, key: key(index) })));
    await engine.close();
    const before = await readMeta(vfs);
    assert.ok(before.freeCount > 0 && before.freeCount <= META_INLINE_FREE_MAX, `free count ${before.freeCount}`);
    assert.deepEqual([before.freeListPage, before.inlineFree.length], [0, before.freeCount], 'a short free list is held inline');
    // Rewrite the file as format 3 wrote it: the free list in a free-list page (taken from the free
    // pages themselves, as the free list's own page is not free), meta version 3, no inline list.
    const geometry = new PageGeometry(PAGE);
    const listPage = before.inlineFree[0]!;
    const listed = before.inlineFree.slice(1);
    const file = await vfs.open(FILE);
    await file.write(listPage * PAGE, encodeFreeListPage(geometry, listPage, before.txn, listed, 0));
    for (let page = 0; page < 4; page++) {
      const old = decodeMeta(await file.read(page * PAGE, PAGE), page);
      assert.ok(typeof old !== 'string', old as string);
      const bytes = encodeMetaPage(PAGE, page, { ...old, freeListPage: listPage, freeCount: listed.length, inlineFree: [] });
      bytes.writeUInt32LE(3, 24 + 8);
      sealPage(bytes);
      await file.write(page * PAGE, bytes);
    }
    await file.close();
    const reopened = await openEngine(vfs);
    await reopened.checkTree();
    assert.equal((await reopened.stats()).figures.btree_pages_free, listed.length);
    await reopened.put(text('b'), text('2'));
    await reopened.checkTree();
    assert.deepEqual(await reopened.get(key(350)), text('v'));
    await reopened.close();
    const after = await readMeta(vfs);
    // The old list page is free now, and the list is inline again.
    assert.equal(after.freeListPage, 0);
    assert.ok(after.inlineFree.includes(listPage), JSON.stringify(after.inlineFree));
    const raw = await vfs.open(FILE);
    assert.equal((await raw.read(metaPage(slotOf(after.txn), 0) * PAGE, PAGE)).readUInt32LE(24 + 8), FORMAT_VERSION);
    await raw.close();
  });
});

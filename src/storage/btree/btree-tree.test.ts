/**
 * Tests of the btree engine's own machinery (the shared conformance suite is in
 * btree-engine.test.ts): model-based operation sequences with `checkTree()`,
 * merges on delete-most, overflow keys and values, free-page reuse, snapshot
 * isolation of scans, checksum corruption, the checker rejecting broken trees,
 * and I/O errors. Everything runs on `MemVfs` with small pages, so a few
 * hundred keys already make a tree several levels deep.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isImpulseError } from '../../errors.js';
import { AssertionError } from '../../util/assert.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import type { Vfs } from '../../vfs/vfs.js';
import { SortedMapModel } from '../../../testkit/storage/conformance.js';
import type { RangeOptions, WriteOp } from '../engine.js';
import { BTREE_FILE_NAME, BTreeEngine, type BTreeEngineOptions } from './btree-engine.js';
import { encodeMetaSlot, META_INLINE_FREE_MAX, metaPage, slotOf, type Meta } from './meta.js';
import { encodeLeaf, PageGeometry } from './page.js';
import { chooseMeta } from './recovery.js';

const DIR = 'db';
const FILE = `${DIR}/${BTREE_FILE_NAME}`;
const SMALL_PAGE = 512;

async function openEngine(vfs: Vfs, options: Partial<BTreeEngineOptions> = {}): Promise<BTreeEngine> {
  const engine = new BTreeEngine({ dataDir: DIR, vfs, pageBytes: SMALL_PAGE, ...options });
  await engine.open();
  return engine;
}

function key(index: number, width = 6): Buffer {
  return Buffer.from(`k${String(index).padStart(width, '0')}`);
}

function value(index: number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let at = 0; at < length; at++) bytes[at] = (index * 31 + at * 7) & 0xff;
  return bytes;
}

async function assertMatchesModel(engine: BTreeEngine, model: SortedMapModel): Promise<void> {
  const forward = await engine.range({ limit: engine.limits.rangeLimitMax });
  const expected = model.range({ limit: engine.limits.rangeLimitMax });
  assert.deepEqual(
    forward.map((entry) => [entry.key.toString('hex'), entry.value.toString('hex')]),
    expected.map((entry) => [entry.key.toString('hex'), entry.value.toString('hex')]),
  );
  const reverse = await engine.range({ limit: engine.limits.rangeLimitMax, reverse: true });
  assert.deepEqual(
    reverse.map((entry) => entry.key.toString('hex')),
    expected.map((entry) => entry.key.toString('hex')).reverse(),
  );
}

/** The committed version on disk, as opening would choose it. */
async function readMeta(vfs: Vfs, pageBytes: number): Promise<Meta> {
  const file = await vfs.open(FILE);
  try {
    return (await chooseMeta(file, FILE, pageBytes, 'refuse')).meta;
  } finally {
    await file.close();
  }
}

describe('btree: model-based sequences with checkTree()', () => {
  it('matches a sorted map on random sequences with long keys, long values, delete-most and reopen', async () => {
    // Key alphabet is small so overwrites and deletes of present keys are common. With
    // 512-byte pages keys over 49 bytes and values over 62 bytes go to overflow runs.
    const shortKey = fc.uint8Array({ minLength: 1, maxLength: 6 }).map((bytes) => Buffer.from(bytes.map((b) => 97 + (b % 5))));
    const longKey = fc.tuple(shortKey, fc.integer({ min: 50, max: 300 })).map(([prefix, length]) => Buffer.concat([prefix, Buffer.alloc(length, 0x61)]));
    const anyKey = fc.oneof({ weight: 6, arbitrary: shortKey }, { weight: 1, arbitrary: longKey });
    const anyValue = fc.oneof(
      { weight: 6, arbitrary: fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)) },
      { weight: 1, arbitrary: fc.integer({ min: 63, max: 3000 }).map((length) => value(length, length)) },
    );
    // Unsynced commits share a proof set across commits (commit-proof.ts); checkTree() checks it.
    const synced = fc.boolean();
    const command = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('put' as const), key: anyKey, value: anyValue, synced }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('del' as const), key: anyKey, synced }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('fill' as const),
          start: fc.integer({ min: 0, max: 1000 }),
          count: fc.integer({ min: 20, max: 300 }),
          valueBytes: fc.integer({ min: 0, max: 80 }),
          synced,
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteMost' as const), keepEvery: fc.integer({ min: 5, max: 20 }), synced }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant('range' as const), from: anyKey, reverse: fc.boolean(), limit: fc.integer({ min: 1, max: 50 }) }),
      },
    );
    let sequences = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 40 }), async (commands) => {
        const vfs = new MemVfs();
        let engine = await openEngine(vfs, { cacheBytesMax: 8 * SMALL_PAGE });
        const model = new SortedMapModel();
        const apply = async (ops: WriteOp[], sync: boolean): Promise<void> => {
          await engine.batch(ops, { sync });
          model.apply(ops);
        };
        for (const cmd of commands) {
          switch (cmd.kind) {
            case 'put':
              await apply([{ type: 'put', key: cmd.key, value: cmd.value }], cmd.synced);
              assert.deepEqual(await engine.get(cmd.key), cmd.value);
              break;
            case 'del':
              await apply([{ type: 'del', key: cmd.key }], cmd.synced);
              assert.equal(await engine.get(cmd.key), undefined);
              break;
            case 'fill': {
              const ops: WriteOp[] = [];
              for (let index = cmd.start; index < cmd.start + cmd.count; index++) ops.push({ type: 'put', key: key(index), value: value(index, cmd.valueBytes) });
              await apply(ops, cmd.synced);
              break;
            }
            case 'deleteMost': {
              const all = model.range({ limit: 1_000_000 });
              await apply(
                all.filter((_entry, index) => index % cmd.keepEvery !== 0).map((entry) => ({ type: 'del', key: entry.key })),
                cmd.synced,
              );
              break;
            }
            case 'reopen':
              await engine.close();
              engine = await openEngine(vfs, { cacheBytesMax: 8 * SMALL_PAGE });
              break;
            case 'range': {
              const options: RangeOptions = cmd.reverse ? { lte: cmd.from, reverse: true, limit: cmd.limit } : { gt: cmd.from, limit: cmd.limit };
              assert.deepEqual(
                (await engine.range(options)).map((entry) => [entry.key.toString('hex'), entry.value.length]),
                model.range(options).map((entry) => [entry.key.toString('hex'), entry.value.length]),
              );
              break;
            }
          }
        }
        await assertMatchesModel(engine, model);
        const report = await engine.checkTree();
        assert.equal(report.keys, model.size);
        await engine.close();
        // The committed file is what a fresh process sees.
        engine = await openEngine(vfs);
        await assertMatchesModel(engine, model);
        await engine.checkTree();
        await engine.close();
        sequences++;
      }),
      { numRuns: Number(process.env.BTREE_PROPERTY_RUNS ?? 40), seed: Number(process.env.BTREE_PROPERTY_SEED ?? 0x5eedb7) },
    );
    assert.ok(sequences > 0);
  });

  it('merges pages when most keys are deleted, and reuses freed pages instead of growing the file', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    const count = 3000;
    const model = new SortedMapModel();
    for (let start = 0; start < count; start += 500) {
      const ops: WriteOp[] = [];
      for (let index = start; index < start + 500; index++) ops.push({ type: 'put', key: key(index), value: value(index, 20) });
      await engine.batch(ops);
      model.apply(ops);
    }
    const full = await engine.checkTree();
    assert.ok(full.depth >= 3, `expected a deep tree, depth ${full.depth}`);
    const sizeFull = await vfs.size(FILE);

    const deletes: WriteOp[] = [];
    for (let index = 0; index < count; index++) if (index % 50 !== 0) deletes.push({ type: 'del', key: key(index) });
    for (let start = 0; start < deletes.length; start += 1000) {
      await engine.batch(deletes.slice(start, start + 1000));
      model.apply(deletes.slice(start, start + 1000));
    }
    const sparse = await engine.checkTree();
    assert.equal(sparse.keys, count / 50);
    assert.ok(sparse.leafPages < full.leafPages / 10, `leaves were merged: ${full.leafPages} -> ${sparse.leafPages}`);
    assert.ok(sparse.depth < full.depth, `tree got shorter: ${full.depth} -> ${sparse.depth}`);
    assert.ok(sparse.freePages > full.leafPages / 2, 'freed pages are on the free list');
    await assertMatchesModel(engine, model);

    // Refill: the file must not grow much beyond its earlier size, because freed pages are reused.
    for (let start = 0; start < count; start += 500) {
      const ops: WriteOp[] = [];
      for (let index = start; index < start + 500; index++) ops.push({ type: 'put', key: key(index), value: value(index, 20) });
      await engine.batch(ops);
      model.apply(ops);
    }
    const refilled = await engine.checkTree();
    await assertMatchesModel(engine, model);
    const sizeRefilled = await vfs.size(FILE);
    assert.ok(refilled.freePages < sparse.freePages / 4, `free pages were not reused: ${sparse.freePages} free before the refill, ${refilled.freePages} after`);
    const grownPages = (sizeRefilled - sizeFull) / SMALL_PAGE;
    assert.ok(grownPages < refilled.leafPages + refilled.branchPages - full.leafPages - full.branchPages + 20, `file grew by ${grownPages} pages`);
    const stats = await engine.stats();
    assert.equal(stats.keyCount, count);
    assert.equal(stats.figures.btree_depth, full.depth);
    assert.ok((stats.figures.btree_cache_hit_ratio ?? 0) > 0);
    await engine.close();
  });

  it('keeps a short free list in the meta page and a long one in free-list pages, across the bound both ways and reopens', async () => {
    const vfs = new MemVfs();
    let engine = await openEngine(vfs);
    const model = new SortedMapModel();
    const apply = async (ops: WriteOp[]): Promise<void> => {
      await engine.batch(ops);
      model.apply(ops);
    };
    const where = async (): Promise<{ inline: number; chain: boolean; free: number }> => {
      const meta = await readMeta(vfs, SMALL_PAGE);
      return { inline: meta.inlineFree.length, chain: meta.freeListPage !== 0, free: meta.freeCount };
    };
    const reopenAndCheck = async (): Promise<void> => {
      await engine.close();
      engine = await openEngine(vfs);
      await engine.checkTree();
      await assertMatchesModel(engine, model);
    };
    const count = 2000;
    await apply(Array.from({ length: count }, (_, index) => ({ type: 'put' as const, key: key(index), value: value(index, 20) })));
    let state = await where();
    assert.deepEqual([state.chain, state.inline], [false, state.free], `a short free list is inline: ${JSON.stringify(state)}`);
    // Delete most keys: the merges free far more than META_INLINE_FREE_MAX pages, so the list needs pages of its own.
    await apply(Array.from({ length: count }, (_, index) => index).filter((index) => index % 40 !== 0).map((index) => ({ type: 'del' as const, key: key(index) })));
    state = await where();
    assert.ok(state.free > META_INLINE_FREE_MAX, JSON.stringify(state));
    assert.deepEqual([state.chain, state.inline], [true, 0], JSON.stringify(state));
    await reopenAndCheck();
    // Refill in small batches: the free pages are used up, and once at most META_INLINE_FREE_MAX are left the list moves back into the meta page.
    for (let index = 0; index < count && (await where()).free > META_INLINE_FREE_MAX / 2; index += 50) {
      await apply(Array.from({ length: 50 }, (_, offset) => ({ type: 'put' as const, key: key(index + offset), value: value(index + offset, 20) })));
    }
    state = await where();
    assert.ok(state.free <= META_INLINE_FREE_MAX, JSON.stringify(state));
    assert.deepEqual([state.chain, state.inline], [false, state.free], JSON.stringify(state));
    await reopenAndCheck();
    await apply([{ type: 'put', key: key(count + 1), value: value(1, 20) }]);
    await engine.checkTree();
    await engine.close();
  });

  it('packs an ascending load to ~75% full pages (right-edge splits), within the fill bounds', async () => {
    const engine = await openEngine(new MemVfs());
    const count = 3000;
    for (let start = 0; start < count; start += 250) {
      const ops: WriteOp[] = [];
      for (let id = start; id < start + 250; id++) ops.push({ type: 'put', key: key(id), value: value(id, 20) });
      await engine.batch(ops);
    }
    const report = await engine.checkTree();
    await engine.close();
    const geometry = new PageGeometry(SMALL_PAGE);
    const fill = (count * geometry.leafEntryBytes(key(0).length, 20)) / (report.leafPages * geometry.payloadBytes);
    // Midpoint splits would leave an ascending load at ~50%.
    assert.ok(fill > 0.7, `average leaf fill ${fill.toFixed(2)} over ${report.leafPages} leaves`);
  });

  it('frees overflow runs when values are overwritten or deleted', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    const big = value(1, 20_000);
    for (let round = 0; round < 5; round++) await engine.put(key(1), big);
    const afterOverwrites = await engine.checkTree();
    // One live run of 41 pages; earlier copies were freed and reused, not accumulated.
    assert.equal(afterOverwrites.overflowPages, new PageGeometry(SMALL_PAGE).runPages(big.length));
    assert.ok(afterOverwrites.pageCount < 3 * afterOverwrites.overflowPages, `page count ${afterOverwrites.pageCount}`);
    assert.deepEqual(await engine.get(key(1)), big);
    await engine.del(key(1));
    const afterDelete = await engine.checkTree();
    assert.equal(afterDelete.overflowPages, 0);
    assert.equal(afterDelete.keys, 0);
    await engine.close();
  });
});

describe('btree: configuration', () => {
  it('an existing file keeps its page size whatever is requested; bad sizes are config errors', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs, { pageBytes: 1024 });
    await engine.put(Buffer.from('k'), Buffer.from('v'));
    await engine.close();
    const reopened = await openEngine(vfs, { pageBytes: 4096 });
    assert.deepEqual(await reopened.get(Buffer.from('k')), Buffer.from('v'));
    assert.equal((await reopened.stats()).figures.btree_page_bytes, 1024);
    await reopened.close();
    for (const pageBytes of [256, 3000, 65536]) {
      assert.throws(() => new BTreeEngine({ dataDir: DIR, vfs, pageBytes }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
    }
    assert.throws(() => new BTreeEngine({ vfs }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID'));
  });
});

describe('btree: snapshot isolation of scans', () => {
  it('a scan sees the version it started on while commits change and free its pages', async () => {
    const vfs = new MemVfs();
    // No cache: every page read goes to the vfs, so the scan really interleaves with the commits.
    const engine = await openEngine(vfs, { cacheBytesMax: 0 });
    const total = 3000;
    const before: WriteOp[] = [];
    for (let index = 0; index < total; index++) before.push({ type: 'put', key: key(index), value: value(index, 30) });
    await engine.batch(before);
    // The scan needs a few hundred page reads; the commits below run while it is in flight,
    // each one rewriting and freeing pages the scan has yet to read.
    const scan = engine.range({ limit: 10_000 });
    for (let round = 0; round < 30; round++) {
      const ops: WriteOp[] = [];
      for (let index = round * 100; index < round * 100 + 99; index++) ops.push({ type: 'del', key: key(index) });
      ops.push({ type: 'put', key: key(10_000 + round), value: value(round, 30) });
      await engine.batch(ops);
    }
    const entries = await scan;
    assert.equal(entries.length, total);
    entries.forEach((entry, index) => {
      assert.deepEqual(entry.key, key(index));
      assert.deepEqual(entry.value, value(index, 30));
    });
    const after = await engine.range({ limit: 10_000 });
    assert.equal(after.length, 30 + 30);
    await engine.checkTree();
    await engine.close();
  });
});

describe('btree: corruption is detected and named, never returned', () => {
  it('a flipped bit in a leaf fails get, range and checkTree with a corruption error naming the page', async () => {
    const vfs = new MemVfs();
    let engine = await openEngine(vfs);
    await engine.put(Buffer.from('only'), Buffer.from('value'));
    await engine.close();
    const meta = await readMeta(vfs, SMALL_PAGE);
    assert.equal(meta.depth, 1);
    vfs.flipBit(FILE, meta.root * SMALL_PAGE + 100, 3);
    engine = await openEngine(vfs);
    const namesPage = (error: unknown): boolean =>
      isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && error.message.includes(`page ${meta.root} `) && error.message.includes('checksum');
    await assert.rejects(engine.get(Buffer.from('only')), namesPage);
    await assert.rejects(engine.range({ limit: 10 }), namesPage);
    await assert.rejects(engine.checkTree(), namesPage);
    await engine.close();
  });

  it('a flipped bit in an overflow page fails the read of that value, naming the page', async () => {
    const vfs = new MemVfs();
    let engine = await openEngine(vfs);
    await engine.put(Buffer.from('big'), value(7, 5000));
    await engine.put(Buffer.from('small'), Buffer.from('ok'));
    await engine.close();
    const meta = await readMeta(vfs, SMALL_PAGE);
    // The run is the first allocation of the first commit: pages 2.. (the leaf comes after it).
    const runPage = 4;
    vfs.flipBit(FILE, runPage * SMALL_PAGE + 200, 0);
    engine = await openEngine(vfs);
    assert.deepEqual(await engine.get(Buffer.from('small')), Buffer.from('ok'));
    await assert.rejects(engine.get(Buffer.from('big')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && error.message.includes(`page ${runPage} `));
    assert.ok(meta.root !== runPage);
    await engine.close();
  });
});

describe('btree: checkTree() rejects broken trees', () => {
  it('reports a leaked page (neither reachable nor free)', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    await engine.put(Buffer.from('a'), Buffer.from('1'));
    await engine.close();
    const meta = await readMeta(vfs, SMALL_PAGE);
    // A newer meta claiming one more page than the tree and free list account for.
    const file = await vfs.open(FILE);
    const leaked: Meta = { ...meta, txn: meta.txn + 1, pageCount: meta.pageCount + 1 };
    await file.write(meta.pageCount * SMALL_PAGE, Buffer.alloc(SMALL_PAGE));
    await file.write(metaPage(slotOf(leaked.txn), 0) * SMALL_PAGE, encodeMetaSlot(SMALL_PAGE, slotOf(leaked.txn), leaked));
    await file.close();
    const reopened = await openEngine(vfs);
    await assert.rejects(reopened.checkTree(), (error: unknown) => error instanceof AssertionError && /leaked/.test(error.message));
    await reopened.close();
  });

  it('reports keys out of order in a page with a valid checksum', async () => {
    const vfs = new MemVfs();
    const engine = await openEngine(vfs);
    await engine.batch([
      { type: 'put', key: Buffer.from('a'), value: Buffer.from('1') },
      { type: 'put', key: Buffer.from('b'), value: Buffer.from('2') },
    ]);
    await engine.close();
    const meta = await readMeta(vfs, SMALL_PAGE);
    const file = await vfs.open(FILE);
    const geometry = new PageGeometry(SMALL_PAGE);
    await file.write(meta.root * SMALL_PAGE, encodeLeaf(geometry, meta.root, meta.txn, [Buffer.from('b'), Buffer.from('a')], [Buffer.from('2'), Buffer.from('1')], []));
    await file.close();
    const reopened = await openEngine(vfs);
    await assert.rejects(reopened.checkTree(), (error: unknown) => error instanceof AssertionError && /out of order/.test(error.message));
    await reopened.close();
  });
});

describe('btree: I/O errors', () => {
  interface WorkloadResult {
    /** Batches that failed with an I/O error. */
    failures: number;
    /** The failed batch, when exactly one failed: it may or may not be durable. */
    failedOps: WriteOp[] | undefined;
  }

  /**
   * Batches of puts and deletes; `model` gets every acknowledged batch. An
   * error that hit a meta-page write leaves the engine refusing writes until
   * reopened, so the workload stops there.
   */
  async function workload(engine: BTreeEngine, model: SortedMapModel): Promise<WorkloadResult> {
    const result: WorkloadResult = { failures: 0, failedOps: undefined };
    for (let round = 0; round < 12; round++) {
      const ops: WriteOp[] = [];
      for (let index = 0; index < 40; index++) {
        const id = (round * 37 + index * 11) % 300;
        ops.push(round % 3 === 2 && index % 2 === 0 ? { type: 'del', key: key(id) } : { type: 'put', key: key(id), value: value(id + round, id % 7 === 0 ? 200 : 25) });
      }
      try {
        await engine.batch(ops);
        model.apply(ops);
      } catch (error) {
        assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'), `expected an I/O error, got ${String(error)}`);
        // A poisoned engine (the error hit a meta-page write) refuses writes until reopened.
        if (/reopen the engine/.test(error.message)) break;
        result.failures++;
        if (result.failures === 1) result.failedOps = ops;
      }
    }
    return result;
  }

  function entriesOf(entries: Array<{ key: Buffer; value: Buffer }>): string[][] {
    return entries.map((entry) => [entry.key.toString('hex'), entry.value.toString('hex')]);
  }

  it('an error at operation N (once) reaches the caller; the engine stays consistent and loses no acknowledged write', async () => {
    const probe = new MemVfs();
    const probeEngine = await openEngine(probe);
    const startIo = probe.ioCount;
    await workload(probeEngine, new SortedMapModel());
    const endIo = probe.ioCount;
    await probeEngine.close();
    const points = Math.min(endIo - startIo, Number(process.env.BTREE_IO_ERROR_POINTS ?? 80));
    let poisonedRuns = 0;
    for (let point = 0; point < points; point++) {
      const at = startIo + Math.floor((point * (endIo - startIo)) / points);
      const vfs = new MemVfs();
      const engine = await openEngine(vfs);
      vfs.inject({ kind: 'error', at });
      const model = new SortedMapModel();
      const { failures, failedOps } = await workload(engine, model);
      assert.equal(failures, 1, `the error at op ${at} failed ${failures} batches`);
      // Reads serve the last committed version, with or without a poisoned writer.
      await assertMatchesModel(engine, model);
      await engine.checkTree();
      const writable = await engine.put(Buffer.from('probe'), Buffer.from('x')).then(
        () => true,
        () => false,
      );
      if (writable) model.apply([{ type: 'put', key: Buffer.from('probe'), value: Buffer.from('x') }]);
      else poisonedRuns++;
      await engine.close();
      // After a restart: exactly the acknowledged writes, or those plus the failed batch
      // (when its meta page reached the disk although the write reported an error).
      const reopened = await openEngine(vfs.recover('lose-unsynced'));
      const actual = entriesOf(await reopened.range({ limit: 10_000 }));
      const withFailed = new SortedMapModel();
      withFailed.apply(model.range({ limit: 10_000 }).map((entry) => ({ type: 'put', key: entry.key, value: entry.value })));
      if (failedOps !== undefined && !writable) withFailed.apply(failedOps);
      const candidates = [entriesOf(model.range({ limit: 10_000 })), entriesOf(withFailed.range({ limit: 10_000 }))];
      assert.ok(candidates.some((candidate) => JSON.stringify(candidate) === JSON.stringify(actual)), `state after an error at op ${at} matches neither outcome`);
      await reopened.checkTree();
      await reopened.close();
    }
    // Most points hit page reads/writes, which roll back cleanly; a few hit the meta write.
    assert.ok(poisonedRuns < points / 2, `${poisonedRuns} of ${points} runs needed a reopen`);
  });

  it('an error on the meta-page write makes the engine refuse writes until reopened, and reads keep working', async () => {
    const setup = async (vfs: MemVfs): Promise<BTreeEngine> => {
      const engine = await openEngine(vfs);
      await engine.put(Buffer.from('before'), Buffer.from('1'));
      return engine;
    };
    const probe = new MemVfs({ recordOperations: true });
    const probeEngine = await setup(probe);
    const start = probe.ioCount;
    await probeEngine.put(Buffer.from('after'), Buffer.from('2'));
    const commitOps = probe.operations.slice(start).map((op) => op.operation);
    await probeEngine.close();
    // A one-page commit: data write, META WRITE, one sync.
    assert.deepEqual(commitOps, ['file.write', 'file.write', 'file.sync']);
    const vfs = new MemVfs();
    const engine = await setup(vfs);
    vfs.inject({ kind: 'error', at: vfs.ioCount + 1 });
    await assert.rejects(engine.put(Buffer.from('after'), Buffer.from('2')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
    await assert.rejects(engine.put(Buffer.from('later'), Buffer.from('3')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO') && /reopen/.test(error.message));
    assert.deepEqual(await engine.get(Buffer.from('before')), Buffer.from('1'));
    await engine.close();
    const reopened = await openEngine(vfs);
    assert.deepEqual(await reopened.get(Buffer.from('before')), Buffer.from('1'));
    await reopened.put(Buffer.from('later'), Buffer.from('3'));
    assert.deepEqual(await reopened.get(Buffer.from('later')), Buffer.from('3'));
    await reopened.checkTree();
    await reopened.close();
  });

  it('a persistent error from operation N on fails every later write; acknowledged writes survive a restart', async () => {
    for (const offset of [3, 20, 50]) {
      const vfs = new MemVfs();
      const engine = await openEngine(vfs);
      const model = new SortedMapModel();
      const acknowledged = new SortedMapModel();
      vfs.inject({ kind: 'error', at: vfs.ioCount + offset, persistent: true });
      let failed = false;
      for (let round = 0; round < 20; round++) {
        const ops: WriteOp[] = [{ type: 'put', key: key(round), value: value(round, 300) }];
        try {
          await engine.batch(ops);
          assert.ok(!failed, 'a write succeeded after the disk died');
          acknowledged.apply(ops);
        } catch (error) {
          assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO'));
          failed = true;
        }
        model.apply(ops);
      }
      assert.ok(failed);
      await engine.close().catch(() => undefined);
      const reopened = await openEngine(vfs.recover('lose-unsynced'));
      for (const entry of acknowledged.range({ limit: 10_000 })) assert.deepEqual(await reopened.get(entry.key), entry.value);
      await reopened.checkTree();
      await reopened.close();
    }
  });
});

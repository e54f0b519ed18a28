/**
 * The shared engine conformance suite. Every engine runs it from its own test
 * file:
 *
 *   runEngineConformance({ name: 'memory', create: (dir, options) => new MemoryEngine({ ...options, dataDir: dir }) });
 *
 * `create(dir, options)` builds an unopened engine over `dir`, a fresh temporary
 * directory per test that the suite removes afterwards; calling it again with
 * the same `dir` must reopen the same data (durable engines). Cases that only
 * make sense for durable engines check `engine.supports.durable` and say so.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isImpulseError, type ErrorCode } from '../../src/errors.js';
import { type Engine, type EngineOptions, type Entry, type RangeOptions, type WriteOp, prefixUpperBound, READ_NOT_SYNC } from '../../src/storage/engine.js';

export interface ConformanceTarget {
  readonly name: string;
  create(dir: string, options?: Partial<EngineOptions>): Engine;
  /** Fewer fast-check runs for slow engines. Default 60. */
  readonly propertyRuns?: number;
  /** The engine answers every read of an open engine on the calling thread (`getSync` never says READ_NOT_SYNC). Default false. */
  readonly readsSync?: boolean;
}

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isImpulseError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  });
}

/** A plain sorted-map model: the reference the engines are compared against. */
export class SortedMapModel {
  private readonly entries = new Map<string, Buffer>();

  apply(ops: readonly WriteOp[]): void {
    for (const op of ops) {
      const key = Buffer.from(op.key).toString('hex');
      if (op.type === 'put') this.entries.set(key, Buffer.from(op.value));
      else this.entries.delete(key);
    }
  }

  get(key: Uint8Array): Buffer | undefined {
    return this.entries.get(Buffer.from(key).toString('hex'));
  }

  range(options: RangeOptions): Entry[] {
    const all = [...this.entries.entries()]
      .map(([key, value]) => ({ key: Buffer.from(key, 'hex'), value }))
      .sort((a, b) => Buffer.compare(a.key, b.key))
      .filter(({ key }) => {
        if (options.gte && Buffer.compare(key, options.gte) < 0) return false;
        if (options.gt && Buffer.compare(key, options.gt) <= 0) return false;
        if (options.lt && Buffer.compare(key, options.lt) >= 0) return false;
        if (options.lte && Buffer.compare(key, options.lte) > 0) return false;
        return true;
      });
    if (options.reverse) all.reverse();
    return all.slice(0, options.limit);
  }

  get size(): number {
    return this.entries.size;
  }
}

export function runEngineConformance(target: ConformanceTarget): void {
  describe(`engine conformance: ${target.name}`, () => {
    const dirs: string[] = [];
    const open: Engine[] = [];
    let root = '';

    before(async () => {
      root = await mkdtemp(join(tmpdir(), `impulse-conformance-${target.name}-`));
    });
    after(async () => {
      for (const engine of open) await engine.close().catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    });

    async function fresh(options?: Partial<EngineOptions>): Promise<{ engine: Engine; dir: string }> {
      const dir = join(root, `db-${dirs.length}`);
      dirs.push(dir);
      const engine = target.create(dir, options);
      await engine.open();
      open.push(engine);
      return { engine, dir };
    }

    async function reopen(engine: Engine, dir: string, options?: Partial<EngineOptions>): Promise<Engine> {
      await engine.close();
      const next = target.create(dir, options);
      await next.open();
      open.push(next);
      return next;
    }

    it('puts, gets, overwrites and deletes single keys', async () => {
      const { engine } = await fresh();
      assert.equal(await engine.get(bytes('a')), undefined);
      await engine.put(bytes('a'), bytes('1'));
      assert.deepEqual(await engine.get(bytes('a')), bytes('1'));
      await engine.put(bytes('a'), bytes('two'));
      assert.deepEqual(await engine.get(bytes('a')), bytes('two'));
      await engine.del(bytes('a'));
      assert.equal(await engine.get(bytes('a')), undefined);
      await engine.del(bytes('a')); // idempotent
      await engine.del(bytes('never-written'));
      assert.equal(await engine.get(bytes('a')), undefined);
    });

    it('stores binary keys and values byte for byte, and empty values', async () => {
      const { engine } = await fresh();
      const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const zeros = Buffer.alloc(17);
      await engine.put(every, every);
      await engine.put(Buffer.from([0]), zeros);
      await engine.put(Buffer.from([0xff, 0x00, 0xfe]), Buffer.alloc(0));
      assert.deepEqual(await engine.get(every), every);
      assert.deepEqual(await engine.get(Buffer.from([0])), zeros);
      const empty = await engine.get(Buffer.from([0xff, 0x00, 0xfe]));
      assert.ok(empty !== undefined, 'an empty value is a present value');
      assert.equal(empty.length, 0);
      // A caller reusing its buffer after the write must not change the stored value.
      const reused = Buffer.from('mutable');
      await engine.put(bytes('reuse'), reused);
      reused.fill(0);
      assert.deepEqual(await engine.get(bytes('reuse')), bytes('mutable'));
    });

    it('accepts keys and values exactly at the limits and rejects one byte more, storing nothing', async () => {
      const { engine } = await fresh({ limits: { keyBytesMax: 4096, valueBytesMax: 1 << 20 } });
      const keyAtLimit = Buffer.alloc(4096, 0x6b);
      const valueAtLimit = Buffer.alloc(1 << 20, 0x76);
      await engine.put(keyAtLimit, valueAtLimit);
      assert.deepEqual(await engine.get(keyAtLimit), valueAtLimit);
      await rejectsWith(engine.put(Buffer.alloc(4097, 0x6b), bytes('v')), 'IMPULSE_ERR_KEY_TOO_LARGE');
      await rejectsWith(engine.put(bytes('big'), Buffer.alloc((1 << 20) + 1)), 'IMPULSE_ERR_VALUE_TOO_LARGE');
      await rejectsWith(engine.put(Buffer.alloc(0), bytes('v')), 'IMPULSE_ERR_KEY_EMPTY');
      await rejectsWith(engine.get(Buffer.alloc(0)), 'IMPULSE_ERR_KEY_EMPTY');
      assert.throws(() => engine.getSync(Buffer.alloc(0)), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_KEY_EMPTY');
      assert.throws(() => engine.getSyncLatin1(''), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_KEY_EMPTY');
      assert.throws(() => engine.getSyncLatin1('k'.repeat(4097)), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_KEY_TOO_LARGE');
      await rejectsWith(engine.del(Buffer.alloc(4097)), 'IMPULSE_ERR_KEY_TOO_LARGE');
      assert.equal(await engine.get(bytes('big')), undefined);
    });

    it('stores a value at the default 16 MiB limit', async () => {
      const { engine, dir } = await fresh();
      const value = Buffer.alloc(16 * 1024 * 1024);
      for (let i = 0; i < value.length; i += 4096) value[i] = (i >>> 12) & 0xff;
      await engine.put(bytes('huge'), value);
      assert.ok((await engine.get(bytes('huge')))?.equals(value));
      await rejectsWith(engine.put(bytes('huge2'), Buffer.alloc(16 * 1024 * 1024 + 1)), 'IMPULSE_ERR_VALUE_TOO_LARGE');
      if (engine.supports.durable) {
        const reopened = await reopen(engine, dir);
        assert.ok((await reopened.get(bytes('huge')))?.equals(value));
      }
    });

    it('applies a batch atomically and in order; an invalid batch changes nothing', async () => {
      const { engine } = await fresh({ limits: { batchOpsMax: 5 } });
      await engine.put(bytes('gone'), bytes('x'));
      await engine.batch([
        { type: 'put', key: bytes('k1'), value: bytes('v1') },
        { type: 'put', key: bytes('k2'), value: bytes('v2') },
        { type: 'del', key: bytes('gone') },
        { type: 'put', key: bytes('k1'), value: bytes('v1-later') },
        { type: 'del', key: bytes('k2') },
      ]);
      assert.deepEqual(await engine.get(bytes('k1')), bytes('v1-later'));
      assert.equal(await engine.get(bytes('k2')), undefined);
      assert.equal(await engine.get(bytes('gone')), undefined);

      await rejectsWith(
        engine.batch([
          { type: 'put', key: bytes('k3'), value: bytes('v3') },
          { type: 'put', key: Buffer.alloc(0), value: bytes('bad') },
        ]),
        'IMPULSE_ERR_KEY_EMPTY',
      );
      await rejectsWith(
        engine.batch(Array.from({ length: 6 }, (_, i) => ({ type: 'put' as const, key: bytes(`n${i}`), value: bytes('v') }))),
        'IMPULSE_ERR_BATCH_TOO_LARGE',
      );
      await rejectsWith(engine.batch([{ type: 'merge', key: bytes('k4') } as unknown as WriteOp]), 'IMPULSE_ERR_BATCH_INVALID');
      assert.equal(await engine.get(bytes('k3')), undefined);
      assert.equal(await engine.get(bytes('n0')), undefined);
      assert.equal(await engine.get(bytes('k4')), undefined);
      await engine.batch([]);
    });

    it('scans ranges forward and reverse with bounds, prefixes and limits', async () => {
      const { engine } = await fresh();
      const keys = ['a', 'aa', 'ab', 'abc', 'b', 'ba', 'c', 'c\u0000', 'd'];
      await engine.batch(keys.map((key) => ({ type: 'put' as const, key: bytes(key), value: bytes(`v:${key}`) })));
      const keysOf = (entries: Entry[]): string[] => entries.map((entry) => entry.key.toString('utf8'));

      assert.deepEqual(keysOf(await engine.range({ limit: 100 })), keys);
      assert.deepEqual(keysOf(await engine.range({ limit: 100, reverse: true })), [...keys].reverse());
      assert.deepEqual(keysOf(await engine.range({ gte: bytes('ab'), lt: bytes('c'), limit: 100 })), ['ab', 'abc', 'b', 'ba']);
      assert.deepEqual(keysOf(await engine.range({ gt: bytes('ab'), lte: bytes('c'), limit: 100 })), ['abc', 'b', 'ba', 'c']);
      assert.deepEqual(keysOf(await engine.range({ gte: bytes('ab'), lt: bytes('c'), limit: 100, reverse: true })), ['ba', 'b', 'abc', 'ab']);
      assert.deepEqual(keysOf(await engine.range({ gt: bytes('ab'), lte: bytes('c'), limit: 2, reverse: true })), ['c', 'ba']);
      assert.deepEqual(keysOf(await engine.range({ gte: bytes('a'), limit: 3 })), ['a', 'aa', 'ab']);
      const prefix = bytes('ab');
      assert.deepEqual(keysOf(await engine.range({ gte: prefix, lt: prefixUpperBound(prefix)!, limit: 100 })), ['ab', 'abc']);
      assert.deepEqual(keysOf(await engine.range({ gte: bytes('c'), lt: prefixUpperBound(bytes('c'))!, limit: 100, reverse: true })), ['c\u0000', 'c']);
      // Empty and inverted ranges.
      assert.deepEqual(await engine.range({ gte: bytes('x'), limit: 10 }), []);
      assert.deepEqual(await engine.range({ gte: bytes('c'), lt: bytes('b'), limit: 10 }), []);
      assert.deepEqual(await engine.range({ gte: bytes('c'), lt: bytes('c'), limit: 10 }), []);
      assert.deepEqual(keysOf(await engine.range({ gte: bytes('c'), lte: bytes('c'), limit: 10 })), ['c']);
      // Values come back with their keys.
      const [first] = await engine.range({ gte: bytes('abc'), limit: 1 });
      assert.deepEqual(first?.value, bytes('v:abc'));
      // Invalid options are a clear error.
      await rejectsWith(engine.range({ limit: 0 }), 'IMPULSE_ERR_RANGE_INVALID');
      await rejectsWith(engine.range({ limit: 1.5 }), 'IMPULSE_ERR_RANGE_INVALID');
      await rejectsWith(engine.range({ limit: engine.limits.rangeLimitMax + 1 }), 'IMPULSE_ERR_RANGE_INVALID');
      await rejectsWith(engine.range({ gte: bytes('a'), gt: bytes('a'), limit: 1 }), 'IMPULSE_ERR_RANGE_INVALID');
    });

    it('orders keys by unsigned bytes, shorter prefix first', async () => {
      const { engine } = await fresh();
      const keys = [[0x00], [0x00, 0x00], [0x01], [0x7f], [0x80], [0x80, 0x00], [0xfe, 0xff], [0xff], [0xff, 0xff]].map((k) => Buffer.from(k));
      const shuffled = [keys[4], keys[0], keys[8], keys[2], keys[6], keys[1], keys[7], keys[3], keys[5]] as Buffer[];
      for (const key of shuffled) await engine.put(key, key);
      const scanned = await engine.range({ limit: 100 });
      assert.deepEqual(scanned.map((entry) => entry.key.toString('hex')), keys.map((key) => key.toString('hex')));
      assert.equal(prefixUpperBound(Buffer.from([0xff, 0xff])), undefined);
      const upper = prefixUpperBound(Buffer.from([0x80]))!;
      assert.deepEqual((await engine.range({ gte: Buffer.from([0x80]), lt: upper, limit: 10 })).map((e) => e.key.toString('hex')), ['80', '8000']);
    });

    it('serves many concurrent writers (group commit) and loses none', async () => {
      const { engine, dir } = await fresh();
      const writes = Array.from({ length: 300 }, (_, i) => engine.put(bytes(`concurrent-${i}`), bytes(`value-${i}`)));
      writes.push(engine.batch([{ type: 'put', key: bytes('batched'), value: bytes('yes') }]));
      await Promise.all(writes);
      let reader: Engine = engine;
      if (engine.supports.durable) reader = await reopen(engine, dir);
      for (let i = 0; i < 300; i++) assert.deepEqual(await reader.get(bytes(`concurrent-${i}`)), bytes(`value-${i}`));
      assert.deepEqual(await reader.get(bytes('batched')), bytes('yes'));
      const stats = await reader.stats();
      assert.ok(typeof stats.figures === 'object');
    });

    it('reads back everything after close and reopen (durable engines)', async (t) => {
      const { engine, dir } = await fresh();
      if (!engine.supports.durable) {
        t.skip(`${target.name} is not durable: it keeps nothing across a reopen by design`);
        return;
      }
      for (let i = 0; i < 500; i++) await engine.put(bytes(`key-${String(i).padStart(4, '0')}`), bytes(`value-${i}`));
      for (let i = 0; i < 500; i += 3) await engine.del(bytes(`key-${String(i).padStart(4, '0')}`));
      const reopened = await reopen(engine, dir);
      for (let i = 0; i < 500; i++) {
        const expected = i % 3 === 0 ? undefined : bytes(`value-${i}`);
        assert.deepEqual(await reopened.get(bytes(`key-${String(i).padStart(4, '0')}`)), expected);
      }
      const all = await reopened.range({ limit: 1000 });
      assert.equal(all.length, 500 - Math.ceil(500 / 3));
      // With sync none the data also survives a clean close.
      const { engine: unsynced, dir: unsyncedDir } = await fresh({ sync: 'none' });
      await unsynced.put(bytes('k'), bytes('v'));
      const again = await reopen(unsynced, unsyncedDir, { sync: 'none' });
      assert.deepEqual(await again.get(bytes('k')), bytes('v'));
    });

    it('fails clearly on operations after close, and close is idempotent', async () => {
      const { engine } = await fresh();
      await engine.put(bytes('k'), bytes('v'));
      await engine.close();
      await engine.close();
      await rejectsWith(engine.get(bytes('k')), 'IMPULSE_ERR_ENGINE_NOT_OPEN');
      assert.throws(() => engine.getSync(bytes('k')), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_ENGINE_NOT_OPEN');
      assert.throws(() => engine.getSyncLatin1('k'), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_ENGINE_NOT_OPEN');
      await rejectsWith(engine.put(bytes('k'), bytes('v')), 'IMPULSE_ERR_ENGINE_NOT_OPEN');
      await rejectsWith(engine.del(bytes('k')), 'IMPULSE_ERR_ENGINE_NOT_OPEN');
      await rejectsWith(engine.batch([{ type: 'del', key: bytes('k') }]), 'IMPULSE_ERR_ENGINE_NOT_OPEN');
      await rejectsWith(engine.range({ limit: 1 }), 'IMPULSE_ERR_ENGINE_NOT_OPEN');
      await rejectsWith(engine.open(), 'IMPULSE_ERR_ENGINE_NOT_OPEN');
    });

    it('finishes queued writes before close completes', async () => {
      const { engine, dir } = await fresh();
      const writes = Array.from({ length: 50 }, (_, i) => engine.put(bytes(`late-${i}`), bytes('v')));
      await engine.close();
      await Promise.all(writes);
      if (engine.supports.durable) {
        const reopened = target.create(dir);
        await reopened.open();
        open.push(reopened);
        for (let i = 0; i < 50; i++) assert.deepEqual(await reopened.get(bytes(`late-${i}`)), bytes('v'));
      }
    });

    it('takes a write with sync on or off per call, and rejects a sync that is not a boolean', async () => {
      const { engine, dir } = await fresh();
      await engine.batch([{ type: 'put', key: bytes('unsynced'), value: bytes('1') }], { sync: false });
      await engine.batch([{ type: 'put', key: bytes('synced'), value: bytes('2') }], { sync: true });
      await rejectsWith(engine.batch([{ type: 'put', key: bytes('bad'), value: bytes('3') }], { sync: 'yes' as unknown as boolean }), 'IMPULSE_ERR_BATCH_INVALID');
      let reader: Engine = engine;
      if (engine.supports.durable) reader = await reopen(engine, dir); // a clean close keeps unsynced writes too
      assert.deepEqual(await reader.get(bytes('unsynced')), bytes('1'));
      assert.deepEqual(await reader.get(bytes('synced')), bytes('2'));
      assert.equal(await reader.get(bytes('bad')), undefined);
    });

    it('a snapshot sees the writes queued before it and none queued after', async () => {
      const { engine } = await fresh();
      await engine.put(bytes('k'), bytes('0'));
      const before = engine.put(bytes('k'), bytes('1')); // queued, not yet written
      const taking = engine.snapshot();
      const after = [engine.put(bytes('k'), bytes('2')), engine.del(bytes('k')), engine.put(bytes('new'), bytes('x'))];
      const snapshot = await taking;
      await Promise.all([before, ...after]);
      assert.deepEqual(await snapshot.get(bytes('k')), bytes('1'));
      assert.equal(await snapshot.get(bytes('new')), undefined);
      assert.deepEqual((await snapshot.range({ limit: 10 })).map((e) => e.key.toString()), ['k']);
      assert.equal(await engine.get(bytes('k')), undefined);
      snapshot.release();
      await rejectsWith(snapshot.range({ limit: 1 }), 'IMPULSE_ERR_SNAPSHOT_ABORTED');
    });

    it('bounds open snapshots, and closing the engine ends them', async () => {
      const { engine } = await fresh({ limits: { snapshotsOpenMax: 2 } });
      await engine.put(bytes('a'), bytes('1'));
      const first = await engine.snapshot();
      const second = await engine.snapshot();
      await rejectsWith(engine.snapshot(), 'IMPULSE_ERR_OVERLOADED');
      first.release();
      first.release(); // idempotent
      const third = await engine.snapshot();
      assert.deepEqual(await third.get(bytes('a')), bytes('1'));
      await engine.close();
      await rejectsWith(second.range({ limit: 1 }), 'IMPULSE_ERR_ENGINE_NOT_OPEN');
      await rejectsWith(engine.snapshot(), 'IMPULSE_ERR_ENGINE_NOT_OPEN');
    });

    it('snapshot reads equal the model frozen at the snapshot point while random writes go on (fast-check)', async () => {
      const key = fc.uint8Array({ minLength: 1, maxLength: 3 }).map((k) => Buffer.from(k.map((b) => b % 5)));
      const value = fc.uint8Array({ minLength: 0, maxLength: 12 }).map((v) => Buffer.from(v));
      const write = fc.oneof(fc.record({ type: fc.constant('put' as const), key, value }), fc.record({ type: fc.constant('del' as const), key }));
      const scan = fc.record({
        lower: fc.option(key, { nil: undefined }),
        upper: fc.option(key, { nil: undefined }),
        reverse: fc.boolean(),
        limit: fc.integer({ min: 1, max: 6 }),
      });
      const step = fc.oneof({ weight: 3, arbitrary: fc.array(write, { minLength: 1, maxLength: 4 }) }, { weight: 2, arbitrary: scan });
      await fc.assert(
        fc.asyncProperty(fc.array(write, { maxLength: 30 }), fc.array(step, { minLength: 1, maxLength: 40 }), async (initial, steps) => {
          const { engine } = await fresh();
          const model = new SortedMapModel();
          for (const op of initial) {
            await engine.batch([op]);
            model.apply([op]);
          }
          const frozen = new SortedMapModel();
          frozen.apply(model.range({ limit: 1000 }).map((entry) => ({ type: 'put' as const, key: entry.key, value: entry.value })));
          const snapshot = await engine.snapshot();
          const pending: Array<Promise<void>> = [];
          for (const item of steps) {
            if (Array.isArray(item)) {
              pending.push(engine.batch(item)); // not awaited: scans race with the writes
              model.apply(item);
              continue;
            }
            const options: RangeOptions = { ...(item.lower ? { gte: item.lower } : {}), ...(item.upper ? { lt: item.upper } : {}), reverse: item.reverse, limit: item.limit };
            // Page through the whole range on the snapshot, as a snapshot stream does.
            const seen: string[] = [];
            let page = await snapshot.range(options);
            while (page.length > 0) {
              for (const entry of page) seen.push(`${entry.key.toString('hex')}=${entry.value.toString('hex')}`);
              if (page.length < item.limit) break;
              const last = page[page.length - 1]!.key;
              page = await snapshot.range(item.reverse ? { ...options, lt: last } : { ...options, gte: undefined, gt: last });
            }
            const expected = frozen.range({ ...options, limit: 1000 }).map((entry) => `${entry.key.toString('hex')}=${entry.value.toString('hex')}`);
            assert.deepEqual(seen, expected);
          }
          await Promise.all(pending);
          assert.deepEqual(
            (await engine.range({ limit: 1000 })).map((e) => e.key.toString('hex')),
            model.range({ limit: 1000 }).map((e) => e.key.toString('hex')),
          );
          snapshot.release();
          await engine.close();
        }),
        { numRuns: target.propertyRuns ?? 60, seed: 0x5a4b },
      );
    });

    it('matches a sorted-map model on random operation sequences (fast-check)', async () => {
      // Small alphabets make collisions, overwrites and deletes of present keys common.
      const key = fc.uint8Array({ minLength: 1, maxLength: 4 }).map((k) => Buffer.from(k.map((b) => b % 6)));
      const value = fc.uint8Array({ minLength: 0, maxLength: 24 }).map((v) => Buffer.from(v));
      const bound = fc.option(key, { nil: undefined });
      const command = fc.oneof(
        { weight: 5, arbitrary: fc.record({ kind: fc.constant('put' as const), key, value }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant('del' as const), key }) },
        {
          weight: 2,
          arbitrary: fc.record({
            kind: fc.constant('batch' as const),
            ops: fc.array(fc.oneof(fc.record({ type: fc.constant('put' as const), key, value }), fc.record({ type: fc.constant('del' as const), key })), { maxLength: 6 }),
          }),
        },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant('get' as const), key }) },
        {
          weight: 2,
          arbitrary: fc.record({
            kind: fc.constant('range' as const),
            lower: bound,
            lowerInclusive: fc.boolean(),
            upper: bound,
            upperInclusive: fc.boolean(),
            reverse: fc.boolean(),
            limit: fc.integer({ min: 1, max: 12 }),
          }),
        },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 60 }), async (commands) => {
          let { engine, dir } = await fresh();
          const model = new SortedMapModel();
          for (const cmd of commands) {
            switch (cmd.kind) {
              case 'put':
                await engine.put(cmd.key, cmd.value);
                model.apply([{ type: 'put', key: cmd.key, value: cmd.value }]);
                break;
              case 'del':
                await engine.del(cmd.key);
                model.apply([{ type: 'del', key: cmd.key }]);
                break;
              case 'batch':
                await engine.batch(cmd.ops);
                model.apply(cmd.ops);
                break;
              case 'get': {
                assert.deepEqual(await engine.get(cmd.key), model.get(cmd.key));
                const now = engine.getSync(cmd.key);
                if (target.readsSync === true) assert.notEqual(now, READ_NOT_SYNC, 'an engine that reads synchronously said READ_NOT_SYNC');
                if (now !== READ_NOT_SYNC) assert.deepEqual(now, model.get(cmd.key));
                // The same key as a latin1 string (one char per byte, any byte): the same answer.
                const nowLatin1 = engine.getSyncLatin1(cmd.key.toString('latin1'));
                if (target.readsSync === true) assert.notEqual(nowLatin1, READ_NOT_SYNC, 'an engine that reads synchronously said READ_NOT_SYNC (latin1 key)');
                if (nowLatin1 !== READ_NOT_SYNC) assert.deepEqual(nowLatin1, model.get(cmd.key));
                break;
              }
              case 'range': {
                const options: RangeOptions = {
                  ...(cmd.lower ? (cmd.lowerInclusive ? { gte: cmd.lower } : { gt: cmd.lower }) : {}),
                  ...(cmd.upper ? (cmd.upperInclusive ? { lte: cmd.upper } : { lt: cmd.upper }) : {}),
                  reverse: cmd.reverse,
                  limit: cmd.limit,
                };
                const actual = (await engine.range(options)).map((e) => [e.key.toString('hex'), e.value.toString('hex')]);
                const expected = model.range(options).map((e) => [e.key.toString('hex'), e.value.toString('hex')]);
                assert.deepEqual(actual, expected);
                break;
              }
              case 'reopen':
                if (engine.supports.durable) engine = await reopen(engine, dir);
                break;
            }
          }
          const everything = await engine.range({ limit: engine.limits.rangeLimitMax });
          assert.equal(everything.length, model.size);
          await engine.close();
          void dir;
        }),
        { numRuns: target.propertyRuns ?? 60, seed: 0x1badb002 },
      );
    });
  });
}

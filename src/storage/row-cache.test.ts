/**
 * The row cache (row-cache.ts): its bounds, and its one promise — a cached
 * answer is always the engine's current one — checked against a model engine
 * under random interleavings of reads and overlapping writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RowCache, RowCacheBudget, rowKey } from './row-cache.js';

const key = (text: string): Buffer => Buffer.from(text, 'latin1');

/** A read through the cache, as an engine does it: a hit, or the engine's answer remembered. */
function read(cache: RowCache, engine: Map<string, Buffer>, text: string): Buffer | undefined {
  const cached = cache.lookup(rowKey(key(text)));
  if (cached !== undefined) return cached ?? undefined;
  const value = engine.get(text);
  cache.remember(rowKey(key(text)), value);
  return value;
}

describe('RowCache', () => {
  it('answers a repeated read, and absence too, without the engine', () => {
    const cache = new RowCache({ bytesMax: 1 << 20, valueBytesMax: 1024 });
    const engine = new Map([['a', key('1')]]);
    assert.deepEqual(read(cache, engine, 'a'), key('1'));
    assert.equal(read(cache, engine, 'b'), undefined);
    engine.clear(); // the cache must not ask again
    assert.deepEqual(read(cache, engine, 'a'), key('1'));
    assert.equal(cache.lookup(rowKey(key('b'))), null);
    assert.deepEqual({ hits: cache.hits, misses: cache.misses }, { hits: 2, misses: 2 });
  });

  it('forgets the keys a write touches at its start and caches nothing until every write has ended', () => {
    const cache = new RowCache({ bytesMax: 1 << 20, valueBytesMax: 1024 });
    const engine = new Map([['a', key('old')], ['b', key('b')]]);
    read(cache, engine, 'a');
    read(cache, engine, 'b');
    cache.beginWrite([key('a')]);
    assert.equal(cache.lookup('a'), undefined, 'a written key is forgotten at once');
    assert.deepEqual(cache.lookup('b'), key('b'), 'an untouched key keeps its entry');
    read(cache, engine, 'a'); // read during the write: the old value, NOT remembered
    engine.set('a', key('new'));
    cache.beginWrite([key('c')]); // a second write overlaps the first
    cache.endWrite();
    read(cache, engine, 'a');
    assert.equal(cache.lookup('a'), undefined, 'still a write in flight: nothing remembered');
    cache.endWrite();
    assert.deepEqual(read(cache, engine, 'a'), key('new'));
    assert.deepEqual(cache.lookup('a'), key('new'));
    assert.throws(() => cache.endWrite(), /endWrite without beginWrite/);
  });

  it('stays within its byte bound, dropping the oldest entries, and skips large values', () => {
    const cache = new RowCache({ bytesMax: 1000, valueBytesMax: 200 });
    const engine = new Map<string, Buffer>();
    for (let i = 0; i < 100; i++) engine.set(`k${i}`, Buffer.alloc(100, i));
    engine.set('big', Buffer.alloc(201));
    for (let i = 0; i < 100; i++) read(cache, engine, `k${i}`);
    read(cache, engine, 'big');
    const figures = cache.figures();
    assert.ok(figures['row_cache_bytes']! <= 1000, `bytes ${figures['row_cache_bytes']}`);
    assert.ok(figures['row_cache_entries']! >= 4, 'it keeps what fits');
    assert.equal(cache.lookup('k0'), undefined, 'the oldest went first');
    assert.deepEqual(cache.lookup('k99'), engine.get('k99'));
    assert.equal(cache.lookup('big'), undefined);
  });

  it('a cached answer is always the engine\'s current one (model, random interleavings)', () => {
    type Step = { kind: 'read'; key: string } | { kind: 'begin'; keys: string[]; value: number } | { kind: 'apply' } | { kind: 'end' };
    const keyArb = fc.constantFrom('a', 'b', 'c', 'd');
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('read' as const), key: keyArb }),
      fc.record({ kind: fc.constant('begin' as const), keys: fc.uniqueArray(keyArb, { minLength: 1, maxLength: 3 }), value: fc.nat(1000) }),
      fc.constant({ kind: 'apply' as const }),
      fc.constant({ kind: 'end' as const }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), fc.integer({ min: 300, max: 2000 }), (steps, bytesMax) => {
        const cache = new RowCache({ bytesMax, valueBytesMax: 64 });
        const engine = new Map<string, Buffer>();
        // Writes begun and not yet ended, oldest first; each is applied to the engine (at some step) before it ends.
        const inFlight: Array<{ keys: string[]; value: Buffer; applied: boolean }> = [];
        for (const s of steps) {
          if (s.kind === 'read') {
            assert.deepEqual(read(cache, engine, s.key), engine.get(s.key));
          } else if (s.kind === 'begin') {
            cache.beginWrite(s.keys.map(key));
            inFlight.push({ keys: s.keys, value: key(String(s.value)), applied: false });
          } else {
            const write = inFlight.find((w) => !w.applied) ?? inFlight[0];
            if (write === undefined) continue;
            if (!write.applied) {
              for (const k of write.keys) engine.set(k, write.value);
              write.applied = true;
            }
            if (s.kind === 'end') {
              inFlight.splice(inFlight.indexOf(write), 1);
              cache.endWrite();
            }
          }
          for (const k of ['a', 'b', 'c', 'd']) {
            const cached = cache.lookup(k);
            if (cached !== undefined) assert.deepEqual(cached ?? undefined, engine.get(k), `cached ${k} differs from the engine`);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('caches sharing one budget: the oldest entry of any of them goes first, and a write forgets only its own engine\'s keys', () => {
    const budget = new RowCacheBudget(1000);
    const [a, b] = [new RowCache({ budget }), new RowCache({ budget })];
    const engines = [new Map<string, Buffer>(), new Map<string, Buffer>()];
    for (let i = 0; i < 10; i++) for (const engine of engines) engine.set(`k${i}`, Buffer.alloc(100, i));
    read(a, engines[0]!, 'k0');
    read(b, engines[1]!, 'k0');
    for (let i = 1; i < 10; i++) read(b, engines[1]!, `k${i}`);
    assert.ok(budget.bytes <= 1000, `budget bytes ${budget.bytes}`);
    assert.equal(a.lookup('k0'), undefined, 'a\'s entry was the oldest of the budget: it went, though a held only one');
    assert.deepEqual(b.lookup('k9'), engines[1]!.get('k9'));
    assert.equal(budget.bytes, a.figures()['row_cache_bytes']! + b.figures()['row_cache_bytes']!);
    read(a, engines[0]!, 'k5');
    b.beginWrite([key('k9')]);
    assert.deepEqual(a.lookup('k5'), engines[0]!.get('k5'), 'another engine\'s write does not touch this cache');
    assert.equal(b.lookup('k9'), undefined);
    b.endWrite();
    a.clear();
    assert.equal(a.figures()['row_cache_entries'], 0);
    assert.equal(budget.bytes, b.figures()['row_cache_bytes']);
    assert.throws(() => new RowCache({ budget, bytesMax: 10 }), /not both/);
  });

  it('caches sharing one budget stay current and bounded together (model, random interleavings)', () => {
    type Step = { kind: 'read'; engine: number; key: string } | { kind: 'write'; engine: number; keys: string[]; value: number } | { kind: 'clear'; engine: number };
    const keyArb = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
    const engineArb = fc.nat(2);
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('read' as const), engine: engineArb, key: keyArb }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), engine: engineArb, keys: fc.uniqueArray(keyArb, { minLength: 1, maxLength: 3 }), value: fc.nat(1000) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const), engine: engineArb }) },
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), fc.integer({ min: 0, max: 1500 }), (steps, bytesMax) => {
        const budget = new RowCacheBudget(bytesMax);
        const caches = [0, 1, 2].map(() => new RowCache({ budget, valueBytesMax: 64 }));
        const engines = [0, 1, 2].map(() => new Map<string, Buffer>());
        for (const s of steps) {
          const cache = caches[s.engine]!;
          const engine = engines[s.engine]!;
          if (s.kind === 'read') assert.deepEqual(read(cache, engine, s.key), engine.get(s.key));
          else if (s.kind === 'clear') cache.clear();
          else {
            cache.beginWrite(s.keys.map(key));
            for (const k of s.keys) engine.set(k, key(String(s.value).repeat(s.value % 7)));
            cache.endWrite();
          }
          let bytes = 0;
          for (const [index, other] of caches.entries()) {
            bytes += other.figures()['row_cache_bytes']!;
            for (const k of ['a', 'b', 'c', 'd', 'e', 'f']) {
              const cached = other.lookup(k);
              if (cached !== undefined) assert.deepEqual(cached ?? undefined, engines[index]!.get(k), `engine ${index}: cached ${k} differs`);
            }
          }
          assert.ok(budget.bytes <= bytesMax, `budget ${budget.bytes} over ${bytesMax}`);
          assert.equal(budget.bytes, bytes, 'the budget counts exactly its caches\' entries');
        }
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * The row cache (row-cache.ts): its bounds, and its one promise — a cached
 * answer is always the engine's current one — checked against a model engine
 * under random interleavings of reads and overlapping writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RowCache, rowKey } from './row-cache.js';

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
});

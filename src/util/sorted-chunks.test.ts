import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { OrderedMap } from './ordered-map.js';
import { ChunkCursor, SortedChunks } from './sorted-chunks.js';

interface Node {
  readonly key: string;
  value: number;
}

type Command =
  | { type: 'insert'; keys: number[] }
  | { type: 'delete'; key: number }
  | { type: 'seek'; key: number; exclusive: boolean; backward: boolean }
  | { type: 'step'; steps: number };

// Up to 600 distinct keys, so chunks (128 nodes) split and merge; '\u00ff' checks latin1 order past ASCII.
const keyOf = (n: number): string => (n % 7 === 0 ? '\u00ff' : '') + String(n).padStart(3, '0');
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ type: fc.constant('insert' as const), keys: fc.array(fc.nat(600), { maxLength: 200 }) }),
  fc.record({ type: fc.constant('delete' as const), key: fc.nat(600) }),
  fc.record({ type: fc.constant('seek' as const), key: fc.nat(600), exclusive: fc.boolean(), backward: fc.boolean() }),
  fc.record({ type: fc.constant('step' as const), steps: fc.integer({ min: 1, max: 40 }) }),
);

describe('SortedChunks', () => {
  it('agrees with a sorted model under inserts (one by one and in bulk) and deletes; a cursor held across changes walks on from its key', () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 60 }), (commands) => {
        const set = new SortedChunks<Node>();
        const model = new Set<string>();
        const cursor = new ChunkCursor(set);
        let backward = false;
        for (const c of commands) {
          if (c.type === 'insert') {
            const fresh = [...new Set(c.keys.map(keyOf))].filter((key) => !model.has(key));
            if (fresh.length === 1) set.insert({ key: fresh[0]!, value: 0 });
            else set.insertAll(fresh.map((key) => ({ key, value: 0 })));
            for (const key of fresh) model.add(key);
          } else if (c.type === 'delete') {
            assert.equal(set.delete(keyOf(c.key))?.key, model.has(keyOf(c.key)) ? keyOf(c.key) : undefined);
            model.delete(keyOf(c.key));
          } else if (c.type === 'seek') {
            const sorted = [...model].sort();
            const key = keyOf(c.key);
            backward = c.backward;
            const expected = backward ? sorted.reverse().find((k) => (c.exclusive ? k < key : k <= key)) : sorted.find((k) => (c.exclusive ? k > key : k >= key));
            assert.equal((backward ? cursor.seekLE(key, c.exclusive) : cursor.seekGE(key, c.exclusive))?.key, expected);
          } else if (cursor.node !== undefined) {
            // Walk on from the cursor's key, whatever changed since: the model's neighbours of that key.
            let at: string | undefined = cursor.node.key;
            for (let i = 0; i < c.steps && at !== undefined; i++) {
              const sorted = [...model].sort();
              const from: string = at;
              const expected: string | undefined = backward ? sorted.reverse().find((k) => k < from) : sorted.find((k) => k > from);
              assert.equal((backward ? cursor.prev() : cursor.next())?.key, expected);
              at = expected;
            }
          }
          assert.equal(set.size, model.size);
        }
        const walked: string[] = [];
        const all = new ChunkCursor(set);
        for (let node = all.seekGE(undefined); node !== undefined; node = all.next()) walked.push(node.key);
        assert.deepEqual(walked, [...model].sort());
        const reversed: string[] = [];
        for (let node = all.seekLE(undefined); node !== undefined; node = all.prev()) reversed.push(node.key);
        assert.deepEqual(reversed, [...model].sort().reverse());
        for (const key of model) assert.equal(set.get(key)?.key, key);
      }),
      { numRuns: 200 },
    );
  });
});

describe('OrderedMap', () => {
  it('set/get/delete and ascending/descending scans from a bound', () => {
    const map = new OrderedMap<number>();
    for (const [i, k] of ['d', 'b', 'a', 'c', 'e'].entries()) assert.equal(map.set(k, i), true);
    assert.equal(map.set('c', 9), false);
    assert.equal(map.get('c'), 9);
    assert.equal(map.delete('a'), true);
    assert.equal(map.delete('a'), false);
    assert.equal(map.size, 4);
    assert.deepEqual([...map.ascending('b', true)].map(([k]) => k), ['c', 'd', 'e']);
    assert.deepEqual([...map.descending('d')].map(([k]) => k), ['d', 'c', 'b']);
    assert.deepEqual([...map.descending()].map(([k, v]) => `${k}${v}`), ['e4', 'd0', 'c9', 'b1']);
    map.clear();
    assert.equal(map.size, 0);
    assert.deepEqual([...map.ascending()], []);
  });
});

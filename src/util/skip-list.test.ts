import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { OrderedMap } from './ordered-map.js';
import { SeededRandom } from './random.js';
import { SkipList, type SkipListNode } from './skip-list.js';

interface Node extends SkipListNode<Node> {
  value: number;
}

type Command = { type: 'set'; key: string; value: number } | { type: 'delete'; key: string } | { type: 'seek'; key: string; exclusive: boolean };

const key = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '\u00ff', '\u0000'), maxLength: 4 });
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ type: fc.constant('set' as const), key, value: fc.integer() }),
  fc.record({ type: fc.constant('delete' as const), key }),
  fc.record({ type: fc.constant('seek' as const), key, exclusive: fc.boolean() }),
);

describe('SkipList', () => {
  it('agrees with a sorted array after random inserts and deletes: seeks, both walk directions, size', () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 80 }), fc.integer(), (commands, seed) => {
        const list = new SkipList<Node>(new SeededRandom(seed), (k, height) => ({ key: k, value: 0, next: new Array<Node | undefined>(height), prev: undefined }));
        const model = new Map<string, number>();
        for (const c of commands) {
          const sorted = [...model.keys()].sort();
          if (c.type === 'set') {
            const sizeBefore = list.size;
            list.getOrInsert(c.key).value = c.value;
            assert.equal(list.size > sizeBefore, !model.has(c.key));
            model.set(c.key, c.value);
          } else if (c.type === 'delete') {
            assert.equal(list.delete(c.key)?.key, model.has(c.key) ? c.key : undefined);
            model.delete(c.key);
          } else {
            const ge = sorted.find((k) => (c.exclusive ? k > c.key : k >= c.key));
            const le = [...sorted].reverse().find((k) => (c.exclusive ? k < c.key : k <= c.key));
            assert.equal(list.seekGE(c.key, c.exclusive)?.key, ge);
            assert.equal(list.seekLE(c.key, c.exclusive)?.key, le);
          }
        }
        const sorted = [...model.keys()].sort();
        const forward: string[] = [];
        for (let node = list.first(); node !== undefined; node = node.next[0]) forward.push(node.key);
        const backward: string[] = [];
        for (let node = list.last(); node !== undefined; node = node.prev) backward.push(node.key);
        assert.deepEqual(forward, sorted);
        assert.deepEqual(backward, [...sorted].reverse());
        assert.equal(list.size, model.size);
        for (const [k, v] of model) assert.equal(list.get(k)?.value, v);
      }),
    );
  });
});

describe('OrderedMap', () => {
  it('set/get/delete and ascending/descending scans from a bound, on the shared skip list', () => {
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

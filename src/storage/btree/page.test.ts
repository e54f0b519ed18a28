import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type OverflowRef, type PageView, PageGeometry, PageType, encodeLeaf, isOverflowRef, readEntries, scanEntries, verifyPage } from './page.js';

/** One leaf entry: an inline key or an overflow key (its run's first page), an inline value or an overflow reference. */
interface Entry {
  readonly key: Uint8Array;
  readonly keyPage: number | undefined;
  readonly value: Uint8Array | OverflowRef;
}

const PAGE_NUMBER = fc.integer({ min: 0, max: 0xffff_ffff });

function entries(geometry: PageGeometry): fc.Arbitrary<Entry[]> {
  const inlineKey = fc.uint8Array({ minLength: 1, maxLength: geometry.keyInlineMax, size: 'medium' }).map((key) => ({ key, keyPage: undefined }));
  // An overflow key's bytes live in its run; the page holds the run's first page number (and the length).
  const bigKey = fc.tuple(fc.integer({ min: geometry.keyInlineMax + 1, max: geometry.keyInlineMax + 600 }), PAGE_NUMBER).map(([length, page]) => ({ key: new Uint8Array(length).fill(7), keyPage: page }));
  const inlineValue = fc.uint8Array({ minLength: 0, maxLength: geometry.valueInlineMax, size: 'medium' });
  const bigValue = fc.tuple(PAGE_NUMBER, fc.integer({ min: geometry.valueInlineMax + 1, max: 0xffff_ffff })).map(([page, length]): OverflowRef => ({ page, length }));
  const entry = fc.tuple(fc.oneof({ arbitrary: inlineKey, weight: 4 }, { arbitrary: bigKey, weight: 1 }), fc.oneof({ arbitrary: inlineValue, weight: 4 }, { arbitrary: bigValue, weight: 1 }));
  // Entries until the page is full: what the tree hands encodeLeaf never overflows its page.
  return fc.array(entry, { maxLength: 200, size: 'max' }).map((drawn) => {
    const fitting: Entry[] = [];
    let used = 0;
    for (const [{ key, keyPage }, value] of drawn) {
      const bytes = geometry.leafEntryBytes(key.length, isOverflowRef(value) ? value.length : value.length);
      if (used + bytes > geometry.payloadBytes) break;
      used += bytes;
      fitting.push({ key, keyPage, value });
    }
    return fitting;
  });
}

describe('btree leaf pages', () => {
  it('encodeLeaf writes what readEntries and scanEntries read back: lengths, flags, offsets and page numbers over their full ranges', () => {
    for (const pageBytes of [512, 4096, 32768]) {
      const geometry = new PageGeometry(pageBytes);
      fc.assert(
        fc.property(entries(geometry), PAGE_NUMBER, (drawn, page) => {
          const bytes = encodeLeaf(geometry, page, 5, drawn.map((entry) => entry.key), drawn.map((entry) => entry.value), drawn.map((entry) => entry.keyPage));
          assert.equal(verifyPage('leaf', page, bytes, geometry.pageBytes, [PageType.Leaf], 5), PageType.Leaf);
          const bigKeys = drawn.map((entry) => (entry.keyPage === undefined ? undefined : Buffer.from(entry.key)));
          const view: PageView = { page, stamp: 5, bytes, type: PageType.Leaf, count: drawn.length, bigKeys, keyRuns: [] };
          const read = readEntries(geometry, view);
          assert.equal(read.keys.length, drawn.length);
          drawn.forEach((entry, index) => {
            assert.deepEqual(Buffer.from(read.keys[index]!), Buffer.from(entry.key), `key ${index}`);
            const value = read.values[index]!;
            if (isOverflowRef(entry.value)) assert.deepEqual(value, entry.value, `overflow value ${index}`);
            else assert.deepEqual(Buffer.from(value as Uint8Array), Buffer.from(entry.value), `value ${index}`);
          });
          const scanned = scanEntries('leaf', page, bytes);
          assert.deepEqual(
            scanned.keyRuns.map(({ index, ref }) => [index, ref.page, ref.length]),
            drawn.flatMap((entry, index) => (entry.keyPage === undefined ? [] : [[index, entry.keyPage, entry.key.length]])),
          );
          assert.deepEqual(scanned.valueRuns, drawn.flatMap((entry) => (isOverflowRef(entry.value) ? [entry.value] : [])));
        }),
        { numRuns: 150 },
      );
    }
  });
});

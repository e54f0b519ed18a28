import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { checksumOfPacked, crc32ZeroExtended } from './checksum.js';
import { packedEnd, setChildAt, spliceLeafEntry, unpackedReason } from './page-edit.js';
import {
  type OverflowRef,
  type PageView,
  HEADER_BYTES as PAGE_HEADER_BYTES,
  PageGeometry,
  PageType,
  encodeBranch,
  encodeLeaf,
  isOverflowRef,
  pageChecksum,
  readEntries,
  scanEntries,
  sealPage,
  verifyPage,
} from './page.js';

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

describe('btree page edits as bytes (page-edit.ts)', () => {
  const seal = (bytes: Buffer): Buffer => {
    sealPage(bytes);
    return bytes;
  };

  it('inserting, replacing or removing one leaf entry gives exactly the page encoding the edited entries gives', () => {
    for (const pageBytes of [512, 4096]) {
      const geometry = new PageGeometry(pageBytes);
      const inlineEntry = fc.record({
        key: fc.uint8Array({ minLength: 1, maxLength: geometry.keyInlineMax }),
        value: fc.oneof(
          { weight: 4, arbitrary: fc.uint8Array({ maxLength: geometry.valueInlineMax }) },
          { weight: 1, arbitrary: fc.record({ page: PAGE_NUMBER, length: fc.integer({ min: geometry.valueInlineMax + 1, max: 0xffff_ffff }) }) },
        ),
      });
      fc.assert(
        fc.property(entries(geometry), fc.nat(), fc.constantFrom<0 | 1>(0, 1), fc.option(inlineEntry, { nil: undefined }), PAGE_NUMBER, (drawn, at, remove, entry, page) => {
          if (remove === 1 && drawn.length === 0) return;
          if (remove === 0 && entry === undefined) return;
          const index = remove === 1 ? at % drawn.length : at % (drawn.length + 1);
          const edited = [...drawn];
          edited.splice(index, remove, ...(entry === undefined ? [] : [{ key: entry.key, keyPage: undefined, value: entry.value }]));
          let used = 0;
          for (const { key, value } of edited) used += geometry.leafEntryBytes(key.length, value.length);
          if (used > geometry.payloadBytes) return;
          const encode = (list: Entry[]): Buffer => encodeLeaf(geometry, page, 9, list.map((e) => e.key), list.map((e) => e.value), list.map((e) => e.keyPage));
          const source = encode(drawn);
          const before = Buffer.from(source);
          const spliced = spliceLeafEntry(source, drawn.length, index, remove, entry);
          assert.deepEqual(seal(spliced), encode(edited));
          assert.deepEqual(source, before, 'the source page is not modified');
          assert.equal(packedEnd(spliced, edited.length, true), PAGE_HEADER_BYTES + used);
          assert.equal(unpackedReason(spliced, edited.length, true), undefined);
        }),
        { numRuns: 300 },
      );
    }
  });

  it('setting a branch child gives exactly the page encoding the changed children gives', () => {
    const geometry = new PageGeometry(512);
    const separators = fc.array(fc.uint8Array({ minLength: 1, maxLength: geometry.keyInlineMax }), { maxLength: 20 });
    fc.assert(
      fc.property(separators, fc.nat(), PAGE_NUMBER, (keys, at, child) => {
        const children = keys.map((_, index) => index + 100).concat([7]);
        const index = at % children.length;
        const bytes = encodeBranch(geometry, 5, 9, keys, children, []);
        setChildAt(bytes, index, child);
        const changed = [...children];
        changed[index] = child;
        assert.deepEqual(seal(bytes), encodeBranch(geometry, 5, 9, keys, changed, []));
      }),
      { numRuns: 200 },
    );
  });

  it('unpackedReason accepts encoded pages and rejects a gap, entries out of slot order and a non-zero tail', () => {
    const geometry = new PageGeometry(512);
    const keys = [Buffer.from('a'), Buffer.from('b')];
    const bytes = encodeLeaf(geometry, 5, 9, keys, [Buffer.from('x'), Buffer.from('y')], []);
    assert.equal(unpackedReason(bytes, 2, true), undefined);
    const tail = Buffer.from(bytes);
    tail[500] = 1;
    assert.match(unpackedReason(tail, 2, true) ?? '', /not zero/);
    const swapped = Buffer.from(bytes);
    swapped.writeUInt16LE(bytes.readUInt16LE(PAGE_HEADER_BYTES + 2), PAGE_HEADER_BYTES);
    swapped.writeUInt16LE(bytes.readUInt16LE(PAGE_HEADER_BYTES), PAGE_HEADER_BYTES + 2);
    assert.match(unpackedReason(swapped, 2, true) ?? '', /entry 0 starts at/);
    const gap = Buffer.from(bytes);
    gap.copy(gap, gap.readUInt16LE(PAGE_HEADER_BYTES + 2) + 1, gap.readUInt16LE(PAGE_HEADER_BYTES + 2), gap.readUInt16LE(PAGE_HEADER_BYTES + 2) + 9);
    gap.writeUInt16LE(gap.readUInt16LE(PAGE_HEADER_BYTES + 2) + 1, PAGE_HEADER_BYTES + 2);
    assert.match(unpackedReason(gap, 2, true) ?? '', /entry 1 starts at/);
  });
});

describe('btree page checksum without its zero tail (checksum.ts)', () => {
  it('equals zlib crc32 over bytes [4, pageBytes) for every content length and page size', () => {
    fc.assert(
      fc.property(fc.constantFrom(512, 4096, 32768), fc.nat(), fc.integer(), (pageBytes, at, seed) => {
        const end = 4 + (at % (pageBytes - 3));
        const bytes = Buffer.alloc(pageBytes);
        for (let index = 4; index < end; index++) bytes[index] = (seed + index * 131) & 0xff;
        assert.equal(checksumOfPacked(bytes, end), crc32(bytes.subarray(4)));
        assert.equal(crc32ZeroExtended(crc32(bytes.subarray(4, end)), pageBytes - end), pageChecksum(bytes));
      }),
      { numRuns: 300 },
    );
  });
});

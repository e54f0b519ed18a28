/**
 * The on-disk format of the Raft log, piece by piece: record bodies round-trip
 * every field of every entry kind (and fields added later), the framing
 * detects every flipped bit, and the segment scanner tells a torn tail from
 * damage to synced data exactly as segment-scan.ts states.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isImpulseError } from '../../errors.js';
import { AssertionError } from '../../util/assert.js';
import type { Entry } from '../types.js';
import { canonical } from '../../../testkit/raft-log/log-model.js';
import {
  decodeEntry,
  decodeHardState,
  decodeSegmentHeader,
  decodeSnapshot,
  entryBody,
  hardStateBody,
  segmentHeaderBody,
  snapshotBody,
  writeUint64,
} from './codec.js';
import { encodeSave, readRecord, RECORD_HEADER_BYTES, type RecordBody } from './record.js';
import { scanSegment } from './segment-scan.js';

/** The body bytes of `body`, and where they are. */
function bodyBytes(body: RecordBody): Buffer {
  const bytes = Buffer.alloc(body.length + 8, 0xee);
  body.writeTo(bytes, 4);
  return bytes;
}

function roundTripEntry(entry: Entry): Entry {
  const body = entryBody(entry);
  return decodeEntry(bodyBytes(body), 4, 4 + body.length, 'test.log');
}

const index = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const nodeId = fc.integer({ min: 1, max: 2 ** 32 });
const confState = fc.record({ voters: fc.array(nodeId, { maxLength: 7 }), learners: fc.array(nodeId, { maxLength: 3 }) });
const normalEntry = fc.record({ kind: fc.constant('normal' as const), index, term: index, data: fc.uint8Array({ maxLength: 2000 }) });
const confChangeEntry = fc.record({
  kind: fc.constant('conf-change' as const),
  index,
  term: index,
  change: fc.record({ type: fc.constantFrom('add-learner' as const, 'add-voter' as const, 'remove-node' as const), nodeId, context: fc.uint8Array({ maxLength: 300 }) }),
  confState,
});

describe('raft log codec', () => {
  it('round-trips every field of every entry kind (fast-check)', () => {
    fc.assert(
      fc.property(fc.oneof(normalEntry, confChangeEntry), (entry) => {
        assert.equal(canonical(roundTripEntry(entry)), canonical(entry));
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips fields it has never heard of on structured kinds (a new field on a conf change, a future kind)', () => {
    const newField = { kind: 'conf-change', index: 9, term: 2, change: { type: 'add-voter', nodeId: 4, context: Uint8Array.from([1, 2, 3]), flags: 7 }, confState: { voters: [1, 4], learners: [] }, reason: Uint8Array.from([9]) };
    const futureKind = { kind: 'barrier', index: 10, term: 2, waitFor: [3, 4], note: 'x' };
    for (const entry of [newField, futureKind]) assert.equal(canonical(roundTripEntry(entry as unknown as Entry)), canonical(entry));
  });

  it('round-trips hard state, snapshot boundaries (both effects, extra fields) and segment headers', () => {
    const hardState = { term: 2 ** 40 + 3, vote: 7, commit: Number.MAX_SAFE_INTEGER };
    const hardBody = hardStateBody(hardState);
    assert.deepEqual(decodeHardState(bodyBytes(hardBody), 4, 4 + hardBody.length, 'x'), hardState);
    for (const effect of ['install', 'compact'] as const) {
      const meta = { index: 1234, term: 5, confState: { voters: [1, 2, 3], learners: [9] }, autoLeave: true };
      const body = snapshotBody(meta, effect);
      const decoded = decodeSnapshot(bodyBytes(body), 4, 4 + body.length, 'x');
      assert.equal(decoded.effect, effect);
      assert.equal(canonical(decoded.meta), canonical(meta));
    }
    const header = { sequence: 42, firstIndex: 2 ** 50 };
    const headerBody = segmentHeaderBody(header);
    assert.deepEqual(decodeSegmentHeader(bodyBytes(headerBody), 4, 4 + headerBody.length, 'x'), header);
  });

  it('refuses what it cannot represent or read: unsafe integers on write, a foreign header or version, integers past 2^53 on read', () => {
    assert.throws(() => writeUint64(Buffer.alloc(8), 0, 2 ** 53), AssertionError);
    assert.throws(() => writeUint64(Buffer.alloc(8), 0, -1), AssertionError);
    const headerBody = segmentHeaderBody({ sequence: 1, firstIndex: 1 });
    const foreign = bodyBytes(headerBody);
    foreign[4] = 0x41;
    assert.throws(() => decodeSegmentHeader(foreign, 4, 4 + headerBody.length, 'seg.log'), (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION') && error.message.includes('seg.log'));
    const future = bodyBytes(headerBody);
    future.writeUInt32LE(99, 12);
    assert.throws(() => decodeSegmentHeader(future, 4, 4 + headerBody.length, 'seg.log'), /version 99/);
    const hard = bodyBytes(hardStateBody({ term: 1, vote: 0, commit: 0 }));
    hard.writeUInt32LE(0x20_0000, 8); // high word of the term: 2^53
    assert.throws(() => decodeHardState(hard, 4, 28, 'seg.log'), /beyond 2\^53/);
  });
});

/** A segment made of `saves` (the first one led by a segment header), and each save's start offset. */
function segment(saves: ReadonlyArray<readonly RecordBody[]>): { bytes: Buffer; starts: number[] } {
  const parts: Buffer[] = [];
  const starts: number[] = [];
  let at = 0;
  for (const bodies of saves) {
    starts.push(at);
    const { bytes } = encodeSave(bodies, at);
    parts.push(bytes);
    at += bytes.length;
  }
  return { bytes: Buffer.concat(parts), starts };
}

const header = (): RecordBody[] => [segmentHeaderBody({ sequence: 1, firstIndex: 1 }), snapshotBody({ index: 0, term: 0, confState: { voters: [1], learners: [] } }, 'compact'), hardStateBody({ term: 0, vote: 0, commit: 0 })];
const normal = (i: number, bytes = 30): RecordBody => entryBody({ kind: 'normal', index: i, term: 1, data: Buffer.alloc(bytes, i) });
/** Header save, two saves of entries (the second with three records), a hard-state save, a multi-record final save. */
function sampleSegment(): { bytes: Buffer; starts: number[] } {
  return segment([header(), [normal(1), normal(2)], [hardStateBody({ term: 1, vote: 1, commit: 0 })], [normal(3, 300), normal(4, 300), normal(5, 300), hardStateBody({ term: 1, vote: 1, commit: 2 })]]);
}

describe('raft log records and segment scan', () => {
  it('reads back every save of a clean segment', () => {
    const { bytes, starts } = sampleSegment();
    const scan = scanSegment(bytes, true);
    assert.equal(scan.damage, null);
    assert.equal(scan.tornTail, null);
    assert.equal(scan.validBytes, bytes.length);
    assert.deepEqual(scan.saves.map((save) => save[0]!.offset), starts);
    assert.deepEqual(scan.saves.map((save) => save.length), [3, 2, 1, 4]);
  });

  it('detects every flipped bit of a record, in its header or its body', () => {
    const { bytes } = encodeSave([normal(1, 5)], 0);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const copy = Buffer.from(bytes);
      copy[bit >>> 3]! ^= 1 << (bit & 7);
      assert.equal(readRecord(copy, 0, copy.length), undefined, `bit ${bit} went unnoticed`);
    }
    assert.notEqual(readRecord(bytes, 0, bytes.length), undefined);
  });

  it('treats the last save cut at any byte, followed by nothing, zeros or garbage, as a torn tail of the last segment', () => {
    const { bytes, starts } = sampleSegment();
    const lastStart = starts.at(-1)!;
    for (let cut = lastStart + 1; cut < bytes.length; cut += 7) {
      for (const filler of [Buffer.alloc(0), Buffer.alloc(500), Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 97 + cut) & 0xff))]) {
        const torn = Buffer.concat([bytes.subarray(0, cut), filler]);
        if (torn.length >= bytes.length && torn.subarray(0, bytes.length).equals(bytes)) continue; // the filler happened to restore the save
        const scan = scanSegment(torn, true);
        assert.equal(scan.damage, null, `cut at ${cut}: ${scan.damage?.reason}`);
        assert.equal(scan.tornTail?.saveStart, lastStart, `cut at ${cut}`);
        assert.equal(scan.validBytes, lastStart);
        assert.equal(scan.saves.length, 3);
        // The same bytes in a segment that is not the last are damage: it was complete before the next one began.
        assert.notEqual(scanSegment(torn, false).damage, null);
      }
    }
  });

  it('treats a hole (pages never written) inside the final save, with later pieces of that same save intact, as a torn tail', () => {
    const { bytes, starts } = sampleSegment();
    const lastStart = starts.at(-1)!;
    const holed = Buffer.from(bytes);
    holed.fill(0, lastStart + 30, lastStart + 400); // the first entry of the final save, and part of the second
    const scan = scanSegment(holed, true);
    assert.equal(scan.damage, null, scan.damage?.reason);
    assert.equal(scan.tornTail?.saveStart, lastStart);
  });

  it('reports a flipped bit in any save followed by a later save as damage, and in the final save as a torn tail', () => {
    const { bytes, starts } = sampleSegment();
    const lastStart = starts.at(-1)!;
    for (let offset = 0; offset < bytes.length; offset += 3) {
      const flipped = Buffer.from(bytes);
      flipped[offset]! ^= 1 << offset % 8;
      const scan = scanSegment(flipped, true);
      if (offset < lastStart) {
        assert.notEqual(scan.damage, null, `a flip at ${offset} was not reported`);
        assert.equal(scan.damage!.saveStart, starts.filter((start) => start <= offset).at(-1));
      } else {
        assert.equal(scan.damage, null);
        assert.equal(scan.tornTail?.saveStart, lastStart);
      }
      assert.notEqual(scanSegment(flipped, false).damage, null, `a flip at ${offset} of a non-last segment was not reported`);
    }
  });

  it('reports structure no torn write produces: a segment header that is not first, a record claiming another save', () => {
    const { bytes } = segment([header(), [normal(1)]]);
    const noHeader = segment([[normal(1)]]).bytes;
    assert.match(scanSegment(noHeader, true).damage?.reason ?? '', /does not start with a segment header/);
    const twoHeaders = Buffer.concat([bytes, encodeSave([segmentHeaderBody({ sequence: 1, firstIndex: 1 })], bytes.length).bytes]);
    assert.match(scanSegment(twoHeaders, true).damage?.reason ?? '', /segment header in the middle/);
    const wrongSave = Buffer.concat([bytes, encodeSave([normal(2)], bytes.length - RECORD_HEADER_BYTES).bytes]);
    assert.match(scanSegment(wrongSave, true).damage?.reason ?? '', /save starts at/);
  });
});

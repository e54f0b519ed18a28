/**
 * Record bodies of the Raft log (the framing around them is record.ts).
 * Integers are little-endian u64 (safe integers only); `u8` codes pick a layout.
 *
 *   segment header  ["IMPRAFTL"][format version u32][sequence u64][first index u64]
 *   entry           [index u64][term u64][encoding u8][rest]
 *                     encoding 1 (normal entries): rest = the data bytes
 *                     encoding 2 (every other kind): rest = msgpack of the entry
 *                     without index and term (all its other fields, whatever they are)
 *   hard state      [term u64][vote u64][commit u64]
 *   snapshot        [index u64][term u64][effect u8][msgpack of the meta without index and term]
 *                     effect 1 (install): every entry is discarded (a snapshot from the leader)
 *                     effect 2 (compact): entries after the index are kept (a compaction,
 *                     or the boundary repeated at the start of a segment)
 *
 * Why two entry encodings: normal entries are the hot path (every proposal),
 * and a fixed binary layout costs ~0.1 µs and 17 bytes of overhead against
 * ~1.3 µs and ~40 bytes for msgpack. Every other kind (configuration changes,
 * and any kind added later) and the snapshot meta are rare, so they are
 * encoded structurally: a field added to `Entry` or `ConfState` later
 * round-trips with no change here. The type checks below make the compiler
 * stop anyone who adds a field to normal entries or to `HardState` without
 * adding it to the binary layout.
 *
 * Index and term sit at fixed offsets in every entry body, so recovery builds
 * its index without decoding entries.
 */
import { Packr } from 'msgpackr';
import { assert } from '../../util/assert.js';
import { corruption } from '../../util/corruption.js';
import { entryBytes, type Entry, type HardState } from '../types.js';
import type { SnapshotMeta } from '../storage.js';
import { RecordType, type RecordBody } from './record.js';

/** Component name in corruption errors. */
export const COMPONENT = 'raft log';

type NormalEntry = Extract<Entry, { kind: 'normal' }>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
/** Fails to compile when normal entries gain or lose a field: add it to `entryBody` and `decodeEntry`. */
export type NormalEntryLayoutIsComplete = Assert<Same<keyof NormalEntry, 'kind' | 'index' | 'term' | 'data'>>;
/** Fails to compile when `HardState` gains or loses a field: add it to `hardStateBody` and `decodeHardState`. */
export type HardStateLayoutIsComplete = Assert<Same<keyof HardState, 'term' | 'vote' | 'commit'>>;

// No shared record structures: every body must decode on its own, years later.
const packr = new Packr({ useRecords: false });

const MAGIC = Buffer.from('IMPRAFTL', 'latin1');
export const FORMAT_VERSION = 1;
const SEGMENT_HEADER_BYTES = MAGIC.length + 4 + 8 + 8;
const ENTRY_FIXED_BYTES = 17;
const ENCODING_NORMAL = 1;
const ENCODING_STRUCTURED = 2;

/** What the first record of a segment says about it. */
export interface SegmentHeader {
  /** The segment's sequence number (1, 2, ...; also in its file name). */
  readonly sequence: number;
  /** The index the segment's first appended entry would get: the log's last index + 1 when it was created. */
  readonly firstIndex: number;
}

export function segmentHeaderBody(header: SegmentHeader): RecordBody {
  return {
    type: RecordType.segmentHeader,
    length: SEGMENT_HEADER_BYTES,
    writeTo(target, at) {
      MAGIC.copy(target, at);
      target.writeUInt32LE(FORMAT_VERSION, at + 8);
      writeUint64(target, at + 12, header.sequence);
      writeUint64(target, at + 20, header.firstIndex);
    },
  };
}

export function decodeSegmentHeader(buffer: Buffer, start: number, end: number, file: string): SegmentHeader {
  if (end - start !== SEGMENT_HEADER_BYTES || !buffer.subarray(start, start + MAGIC.length).equals(MAGIC)) {
    throw corruption(COMPONENT, file, 'the segment header has no magic number (not a Raft log segment)');
  }
  const version = buffer.readUInt32LE(start + 8);
  if (version !== FORMAT_VERSION) throw corruption(COMPONENT, file, `segment format version ${version} is not supported (this build reads ${FORMAT_VERSION})`);
  return { sequence: readUint64(buffer, start + 12, file), firstIndex: readUint64(buffer, start + 20, file) };
}

export function entryBody(entry: Entry): RecordBody {
  let rest: Uint8Array;
  let encoding: number;
  if (entry.kind === 'normal') {
    rest = entry.data;
    encoding = ENCODING_NORMAL;
  } else {
    const { index: _index, term: _term, ...fields } = entry;
    rest = packr.pack(fields);
    encoding = ENCODING_STRUCTURED;
  }
  return {
    type: RecordType.entry,
    length: ENTRY_FIXED_BYTES + rest.byteLength,
    writeTo(target, at) {
      writeUint64(target, at, entry.index);
      writeUint64(target, at + 8, entry.term);
      target[at + 16] = encoding;
      target.set(rest, at + ENTRY_FIXED_BYTES);
    },
  };
}

/** Index and term of the entry body at `start`, without decoding the rest. */
export function entryIndexAndTerm(buffer: Buffer, start: number, end: number, file: string): { index: number; term: number } {
  if (end - start < ENTRY_FIXED_BYTES) throw corruption(COMPONENT, file, `an entry body of ${end - start} bytes is too short`);
  return { index: readUint64(buffer, start, file), term: readUint64(buffer, start + 8, file) };
}

/** The payload size (`entryBytes`) of the entry body in `buffer[start, end)`; decodes only entries that are not normal. */
export function entryPayloadBytes(buffer: Buffer, start: number, end: number, file: string): number {
  return buffer[start + 16] === ENCODING_NORMAL ? end - start - ENTRY_FIXED_BYTES : entryBytes(decodeEntry(buffer, start, end, file));
}

/** Decodes the entry body in `buffer[start, end)`. Normal entries' data is a view of `buffer`, not a copy. */
export function decodeEntry(buffer: Buffer, start: number, end: number, file: string): Entry {
  const { index, term } = entryIndexAndTerm(buffer, start, end, file);
  const encoding = buffer[start + 16];
  const rest = buffer.subarray(start + ENTRY_FIXED_BYTES, end);
  if (encoding === ENCODING_NORMAL) return { kind: 'normal', index, term, data: rest };
  if (encoding !== ENCODING_STRUCTURED) throw corruption(COMPONENT, file, `entry ${index} has unknown encoding ${encoding}`);
  const fields = unpackObject(rest, file, `entry ${index}`);
  if (typeof fields['kind'] !== 'string' || fields['kind'] === 'normal') throw corruption(COMPONENT, file, `entry ${index} has no valid kind`);
  // The fields are whatever `entryBody` packed from a valid Entry, checksummed on the way.
  return { ...fields, index, term } as unknown as Entry;
}

export function hardStateBody(hardState: HardState): RecordBody {
  return {
    type: RecordType.hardState,
    length: 24,
    writeTo(target, at) {
      writeUint64(target, at, hardState.term);
      writeUint64(target, at + 8, hardState.vote);
      writeUint64(target, at + 16, hardState.commit);
    },
  };
}

export function decodeHardState(buffer: Buffer, start: number, end: number, file: string): HardState {
  if (end - start !== 24) throw corruption(COMPONENT, file, `a hard-state body has ${end - start} bytes, not 24`);
  return { term: readUint64(buffer, start, file), vote: readUint64(buffer, start + 8, file), commit: readUint64(buffer, start + 16, file) };
}

/** What a snapshot record does to the entries: 'install' discards them all, 'compact' keeps those after its index. */
export type SnapshotEffect = 'install' | 'compact';
const EFFECT_INSTALL = 1;
const EFFECT_COMPACT = 2;

export function snapshotBody(meta: SnapshotMeta, effect: SnapshotEffect): RecordBody {
  const { index: _index, term: _term, ...fields } = meta;
  const rest = packr.pack(fields);
  return {
    type: RecordType.snapshot,
    length: 17 + rest.length,
    writeTo(target, at) {
      writeUint64(target, at, meta.index);
      writeUint64(target, at + 8, meta.term);
      target[at + 16] = effect === 'install' ? EFFECT_INSTALL : EFFECT_COMPACT;
      rest.copy(target, at + 17);
    },
  };
}

export function decodeSnapshot(buffer: Buffer, start: number, end: number, file: string): { meta: SnapshotMeta; effect: SnapshotEffect } {
  if (end - start < 17) throw corruption(COMPONENT, file, `a snapshot body of ${end - start} bytes is too short`);
  const index = readUint64(buffer, start, file);
  const term = readUint64(buffer, start + 8, file);
  const effectCode = buffer[start + 16];
  if (effectCode !== EFFECT_INSTALL && effectCode !== EFFECT_COMPACT) throw corruption(COMPONENT, file, `snapshot boundary ${index} has unknown effect ${effectCode}`);
  const fields = unpackObject(buffer.subarray(start + 17, end), file, `snapshot boundary ${index}`);
  const confState = fields['confState'] as { voters?: unknown; learners?: unknown } | undefined;
  if (typeof confState !== 'object' || confState === null || !Array.isArray(confState.voters) || !Array.isArray(confState.learners)) {
    throw corruption(COMPONENT, file, `snapshot boundary ${index} has no valid configuration`);
  }
  const meta = { ...fields, index, term } as unknown as SnapshotMeta;
  return { meta, effect: effectCode === EFFECT_INSTALL ? 'install' : 'compact' };
}

function unpackObject(bytes: Buffer, file: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (error) {
    throw corruption(COMPONENT, file, `${what} does not decode: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw corruption(COMPONENT, file, `${what} does not decode to an object`);
  return value as Record<string, unknown>;
}

const TWO_POW_32 = 0x1_0000_0000;

/** Writes a non-negative safe integer as u64 (little-endian). */
export function writeUint64(target: Buffer, at: number, value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, 'raft log: a u64 field must be a non-negative safe integer', value);
  target.writeUInt32LE(value % TWO_POW_32, at);
  target.writeUInt32LE(Math.floor(value / TWO_POW_32), at + 4);
}

function readUint64(buffer: Buffer, at: number, file: string): number {
  const high = buffer.readUInt32LE(at + 4);
  // 2^53 - 1 is the largest safe integer: its high word is 0x1fffff.
  if (high > 0x1f_ffff) throw corruption(COMPONENT, file, `a u64 field at byte ${at} is beyond 2^53`);
  return high * TWO_POW_32 + buffer.readUInt32LE(at);
}

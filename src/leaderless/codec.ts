/**
 * Bytes of leaderless mode: a sibling set as stored (after the record type
 * byte) and as sent between replicas, and the causal context a client gets
 * (the `Impulse-Context` header) and sends back.
 *
 * Sibling set (canonical: a set has exactly one encoding, so equal replicas
 * have equal bytes and equal digests):
 *
 *   varint  sibling count (≤ SIBLINGS_MAX)
 *   per sibling, in dot order:
 *     varint node, varint counter            the dot
 *     varint n, n × (varint node, varint counter)   the context, nodes ascending
 *     varint timestamp
 *     byte   0 = tombstone, 1 = value; then varint length and the value's bytes
 *
 * Context header: "c1." + base64url of `varint n, n × (varint node, varint
 * counter)`. Opaque to clients; decoded as untrusted input.
 *
 * Decoding trusts nothing: anything cut short, out of order or over a bound is
 * an ImpulseError with the code the caller names (corruption for stored
 * bytes, an invalid message for a peer's, an invalid context for a client's).
 */
import { type ErrorCode, ImpulseError } from '../errors.js';
import { readVarint, varintBytes, writeVarint } from '../kv/record.js';
import type { NodeId, Sibling, SiblingSet, VersionVector } from './dvv.js';

/** Most siblings a key may hold; a write that would exceed it is refused (docs/leaderless.md, "Sibling explosion"). */
export const SIBLINGS_MAX = 64;
/** Most entries of a version vector (one per node that ever coordinated a write to the key). */
export const VECTOR_ENTRIES_MAX = 256;
/** Longest context header, characters. */
export const CONTEXT_HEADER_CHARS_MAX = 4096;
const CONTEXT_PREFIX = 'c1.';

/** Bytes `set` encodes to. */
export function siblingSetBytes(set: SiblingSet): number {
  let bytes = varintBytes(set.length);
  for (const sibling of set) {
    bytes += varintBytes(sibling.dot.node) + varintBytes(sibling.dot.counter) + vectorBytes(sibling.context) + varintBytes(sibling.timestamp) + 1;
    if (sibling.value !== null) bytes += varintBytes(sibling.value.length) + sibling.value.length;
  }
  return bytes;
}

/** The canonical bytes of `set`, after `prefix` (e.g. a record type byte). */
export function encodeSiblingSet(set: SiblingSet, prefix?: Uint8Array): Buffer {
  const headerBytes = prefix?.length ?? 0;
  const target = Buffer.allocUnsafe(headerBytes + siblingSetBytes(set));
  if (prefix !== undefined) target.set(prefix, 0);
  let offset = writeVarint(target, headerBytes, set.length);
  for (const sibling of set) {
    offset = writeVarint(target, offset, sibling.dot.node);
    offset = writeVarint(target, offset, sibling.dot.counter);
    offset = writeVector(target, offset, sibling.context);
    offset = writeVarint(target, offset, sibling.timestamp);
    if (sibling.value === null) {
      target[offset++] = 0;
    } else {
      target[offset++] = 1;
      offset = writeVarint(target, offset, sibling.value.length);
      target.set(sibling.value, offset);
      offset += sibling.value.length;
    }
  }
  return target;
}

/**
 * The set in `source` from `offset` to its end. Values are views of `source`.
 * Throws `code` when the bytes are not a canonical set (cut short, trailing
 * bytes, unsorted dots or vectors, zero ids or counters, over the bounds).
 */
export function decodeSiblingSet(source: Buffer, offset: number, where: string, code: ErrorCode, valueBytesMax: number): SiblingSet {
  const reader: Reader = new Reader(source, offset, where, code);
  const count = reader.varint();
  reader.check(count <= SIBLINGS_MAX, `${count} siblings (at most ${SIBLINGS_MAX})`);
  const set: Sibling[] = [];
  for (let index = 0; index < count; index++) {
    const node = reader.positive();
    const counter = reader.positive();
    const context = reader.vector();
    const timestamp = reader.varint();
    const kind = reader.byte();
    reader.check(kind === 0 || kind === 1, `sibling kind ${kind}`);
    let value: Buffer | null = null;
    if (kind === 1) {
      const length = reader.varint();
      reader.check(length <= valueBytesMax, `a value of ${length} bytes`);
      value = reader.bytes(length);
    }
    const previous = set[set.length - 1];
    reader.check(previous === undefined || previous.dot.node < node || (previous.dot.node === node && previous.dot.counter < counter), 'siblings out of dot order');
    set.push({ dot: { node, counter }, context, value, timestamp });
  }
  reader.check(reader.offset === source.length, `${source.length - reader.offset} trailing bytes`);
  return set;
}

/** The `Impulse-Context` header value for `vv`. */
export function encodeContext(vv: VersionVector): string {
  const target = Buffer.allocUnsafe(vectorBytes(vv));
  writeVector(target, 0, vv);
  return CONTEXT_PREFIX + target.toString('base64url');
}

/** The version vector of a context header a client sent; IMPULSE_ERR_CONTEXT_INVALID when it is not one we issued. */
export function decodeContext(text: string): VersionVector {
  const invalid = (why: string): ImpulseError =>
    new ImpulseError('IMPULSE_ERR_CONTEXT_INVALID', `the Impulse-Context header is not a context this cluster issued (${why}); send back the header of a GET unchanged`);
  if (text.length > CONTEXT_HEADER_CHARS_MAX) throw invalid(`longer than ${CONTEXT_HEADER_CHARS_MAX} characters`);
  if (!text.startsWith(CONTEXT_PREFIX) || !/^[A-Za-z0-9_-]*$/.test(text.slice(CONTEXT_PREFIX.length))) throw invalid('bad prefix or characters');
  const bytes = Buffer.from(text.slice(CONTEXT_PREFIX.length), 'base64url');
  const reader: Reader = new Reader(bytes, 0, 'context', 'IMPULSE_ERR_CONTEXT_INVALID');
  const vv = reader.vector();
  if (reader.offset !== bytes.length) throw invalid('trailing bytes');
  return vv;
}

function vectorBytes(vv: VersionVector): number {
  let bytes = varintBytes(vv.length);
  for (const [node, counter] of vv) bytes += varintBytes(node) + varintBytes(counter);
  return bytes;
}

function writeVector(target: Buffer, offset: number, vv: VersionVector): number {
  offset = writeVarint(target, offset, vv.length);
  for (const [node, counter] of vv) {
    offset = writeVarint(target, offset, node);
    offset = writeVarint(target, offset, counter);
  }
  return offset;
}

/** A bounds-checked cursor over untrusted bytes. */
class Reader {
  constructor(
    private readonly source: Buffer,
    public offset: number,
    private readonly where: string,
    private readonly code: ErrorCode,
  ) {}

  check(condition: boolean, why: string): asserts condition {
    if (!condition) throw new ImpulseError(this.code, `${this.where}: ${why}`);
  }

  varint(): number {
    try {
      const { value, next } = readVarint(this.source, this.offset, this.where);
      this.offset = next;
      return value;
    } catch {
      throw new ImpulseError(this.code, `${this.where}: a varint at byte ${this.offset} is cut short or too large`);
    }
  }

  positive(): number {
    const value = this.varint();
    this.check(value >= 1, 'a node id or counter of 0');
    return value;
  }

  byte(): number {
    this.check(this.offset < this.source.length, 'cut short');
    return this.source[this.offset++]!;
  }

  bytes(length: number): Buffer {
    this.check(this.offset + length <= this.source.length, 'cut short');
    const view = this.source.subarray(this.offset, this.offset + length);
    this.offset += length;
    return view;
  }

  vector(): VersionVector {
    const length = this.varint();
    this.check(length <= VECTOR_ENTRIES_MAX, `a version vector of ${length} entries`);
    const vv: [NodeId, number][] = [];
    for (let index = 0; index < length; index++) {
      const node = this.positive();
      const counter = this.positive();
      this.check(vv.length === 0 || vv[vv.length - 1]![0] < node, 'version vector out of order');
      vv.push([node, counter]);
    }
    return vv;
  }
}

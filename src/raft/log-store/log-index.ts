/**
 * The in-memory index of the Raft log: for every live entry, the segment and
 * offset of its record, the record's length, the entry's term and its payload
 * size (`entryBytes`, what `entries()` limits by). The read side answers
 * `term()` and `lastIndex()` from here and finds records to read with it;
 * 24 bytes per entry in typed arrays (no object per entry).
 *
 * Covers the contiguous indexes (base, last]. Along ascending indexes,
 * (segment, offset) strictly increases: an entry is appended after every
 * entry before it, and a truncation replaces a suffix.
 */
import { assert } from '../../util/assert.js';

const INITIAL_CAPACITY = 1024;

export class LogIndex {
  /** The index just before the first covered one (a snapshot boundary, or where recovery started). */
  private baseIndex: number;
  /** Array position of index baseIndex + 1. */
  private head = 0;
  private count = 0;
  private segments = new Uint32Array(INITIAL_CAPACITY);
  private offsets = new Uint32Array(INITIAL_CAPACITY);
  private lengths = new Uint32Array(INITIAL_CAPACITY);
  private payloads = new Uint32Array(INITIAL_CAPACITY);
  private terms = new Float64Array(INITIAL_CAPACITY);

  constructor(baseIndex: number) {
    this.baseIndex = baseIndex;
  }

  /** The index before the first covered one. */
  get base(): number {
    return this.baseIndex;
  }

  /** The last covered index (`base` when empty). */
  get last(): number {
    return this.baseIndex + this.count;
  }

  /**
   * Records the entry at `index`, first dropping every entry at or after it
   * (a conflicting suffix). Requires base < index <= last + 1.
   */
  put(index: number, segment: number, offset: number, length: number, term: number, payloadBytes: number): void {
    assert(index > this.baseIndex && index <= this.last + 1, 'raft log index: put leaves a gap or goes below the base', index, this.baseIndex, this.last);
    this.count = index - this.baseIndex - 1;
    if (this.head + this.count === this.segments.length) this.makeRoom();
    const at = this.head + this.count;
    this.segments[at] = segment;
    this.offsets[at] = offset;
    this.lengths[at] = length;
    this.payloads[at] = payloadBytes;
    this.terms[at] = term;
    this.count++;
  }

  /** Drops the entries at or below `index`; past `last`, empties the index and moves its base to `index`. */
  dropThrough(index: number): void {
    if (index <= this.baseIndex) return;
    if (index >= this.last) {
      this.reset(index);
      return;
    }
    const dropped = index - this.baseIndex;
    this.head += dropped;
    this.count -= dropped;
    this.baseIndex = index;
  }

  /** Forgets every entry; the next `put` must be at `index + 1`. */
  reset(index: number): void {
    this.baseIndex = index;
    this.head = 0;
    this.count = 0;
  }

  /** Segment sequence number of the record of `index` (base < index <= last). */
  segment(index: number): number {
    return this.segments[this.position(index)]!;
  }

  offset(index: number): number {
    return this.offsets[this.position(index)]!;
  }

  /** Total record length (header + body) of `index`. */
  length(index: number): number {
    return this.lengths[this.position(index)]!;
  }

  term(index: number): number {
    return this.terms[this.position(index)]!;
  }

  /** Payload bytes of the entry at `index` (`entryBytes`). */
  payload(index: number): number {
    return this.payloads[this.position(index)]!;
  }

  private position(index: number): number {
    assert(index > this.baseIndex && index <= this.last, 'raft log index: index out of range', index, this.baseIndex, this.last);
    return this.head + (index - this.baseIndex - 1);
  }

  /** Moves the live part to the front when at least half the arrays are dropped entries, otherwise doubles them. */
  private makeRoom(): void {
    const capacity = this.segments.length;
    const grow = this.head < capacity / 2;
    const size = grow ? capacity * 2 : capacity;
    const move = <T extends Uint32Array | Float64Array>(from: T, to: T): T => {
      to.set(from.subarray(this.head, this.head + this.count));
      return to;
    };
    if (grow) {
      this.segments = move(this.segments, new Uint32Array(size));
      this.offsets = move(this.offsets, new Uint32Array(size));
      this.lengths = move(this.lengths, new Uint32Array(size));
      this.payloads = move(this.payloads, new Uint32Array(size));
      this.terms = move(this.terms, new Float64Array(size));
    } else {
      this.segments.copyWithin(0, this.head, this.head + this.count);
      this.offsets.copyWithin(0, this.head, this.head + this.count);
      this.lengths.copyWithin(0, this.head, this.head + this.count);
      this.payloads.copyWithin(0, this.head, this.head + this.count);
      this.terms.copyWithin(0, this.head, this.head + this.count);
    }
    this.head = 0;
  }
}

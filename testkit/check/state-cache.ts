/**
 * The search's memo (walk-through step 5 in search.ts): a hash set of
 * (placed-operations bitset, model state[, lazy context]) configurations.
 * Buckets are keyed by a 32-bit hash and chained; equality is exact (bitset
 * words and `model.equal`), so hash collisions cost time, never correctness.
 * Entries live in flat arrays (bitsets in one growing arena) because
 * allocating a small typed array per entry dominated the run time. At most one
 * entry is added per step, and none past `bytesMax` (estimated): a full cache
 * stops remembering, which is still correct, only slower.
 */
import type { Model } from './search.js';

export class StateCache<State> {
  /** Hash key -> index of the newest entry with that key. */
  private readonly buckets = new Map<number, number>();
  private readonly entriesMax: number;
  private entries = 0;
  private capacity = 0;
  private bits = new Uint32Array(0);
  private chainNext = new Int32Array(0);
  private contextOperation = new Int32Array(0);
  private readonly states: State[] = [];
  private readonly contextBefore: (State | undefined)[] = [];

  constructor(
    private readonly model: Pick<Model<State, unknown, unknown>, 'equal' | 'hash'>,
    /** 32-bit words per placed-operations bitset. */
    private readonly words: number,
    bytesMax: number,
  ) {
    // Rough per-entry cost: the bitset, the flat arrays, a Map slot.
    this.entriesMax = Math.floor(bytesMax / (64 + 4 * words));
  }

  /**
   * Adds the configuration and returns true, or returns false if it was
   * present. `contextOperation` >= 0 (after a lazily placed unknown
   * operation: which one; `contextBefore` is the state before it) is part of
   * the configuration; -1 means no context.
   */
  addIfAbsent(placedHash: number, placed: Uint32Array, state: State, contextOperation: number, contextBefore: State | undefined): boolean {
    const key = this.keyOf(placedHash, state, contextOperation, contextBefore);
    const head = this.buckets.get(key);
    for (let entry = head ?? -1; entry >= 0; entry = this.chainNext[entry]!) {
      if (this.matches(entry, placed, state, contextOperation, contextBefore)) return false;
    }
    if (this.entries < this.entriesMax) {
      if (this.entries === this.capacity) this.grow();
      const entry = this.entries++;
      this.bits.set(placed, entry * this.words);
      this.chainNext[entry] = head ?? -1;
      this.contextOperation[entry] = contextOperation;
      this.states.push(state);
      this.contextBefore.push(contextBefore);
      this.buckets.set(key, entry);
    }
    return true;
  }

  private keyOf(placedHash: number, state: State, contextOperation: number, contextBefore: State | undefined): number {
    let key = (placedHash ^ Math.imul(this.model.hash(state) | 0, 0x9e3779b1)) | 0;
    if (contextOperation >= 0) {
      key = (key ^ Math.imul(this.model.hash(contextBefore as State) | 0x1, 0x85ebca77) ^ mix32(contextOperation + 0x27d4eb2f)) | 0;
    }
    // Keep keys within 30 bits: V8 stores those as small integers, larger ones
    // as heap numbers, which made every lookup allocate.
    return key & 0x3fffffff;
  }

  private matches(entry: number, placed: Uint32Array, state: State, contextOperation: number, contextBefore: State | undefined): boolean {
    if (this.contextOperation[entry] !== contextOperation) return false;
    const base = entry * this.words;
    for (let i = 0; i < this.words; i++) if (this.bits[base + i] !== placed[i]) return false;
    if (!this.model.equal(this.states[entry]!, state)) return false;
    return contextOperation < 0 || this.model.equal(this.contextBefore[entry] as State, contextBefore as State);
  }

  private grow(): void {
    const capacity = Math.min(this.entriesMax, Math.max(1024, this.capacity * 2));
    const bits = new Uint32Array(capacity * this.words);
    bits.set(this.bits);
    this.bits = bits;
    const chainNext = new Int32Array(capacity);
    chainNext.set(this.chainNext);
    this.chainNext = chainNext;
    const contextOperation = new Int32Array(capacity);
    contextOperation.set(this.contextOperation);
    this.contextOperation = contextOperation;
    this.capacity = capacity;
  }
}

/** murmur3's 32-bit finalizer: a fixed pseudo-random word per integer. */
export function mix32(value: number): number {
  let h = value | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

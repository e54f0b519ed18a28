/**
 * Where to split a shard by load (`--shard-split-qps`): a bounded sample of
 * the keys of the requests its leader serves, and the key that halves the
 * sampled load. Pure (the randomness is an injected `Random`); the runtime
 * side is src/cluster/shard-load-splits.ts.
 *
 * The models: CockroachDB's load-based splitter (it samples request keys in a
 * reservoir once a range is hot and picks the candidate key that balances
 * the requests left and right of it) and TiKV's load-base-split (RFC 0045:
 * sampled keys, a split only after the load lasted ≥ 10 s). Both refuse a
 * split that cannot spread the load: one hot key stays one hot key on
 * whichever side it lands.
 *
 *   const sampler = new KeySampler(random, LOAD_SAMPLE_KEYS);
 *   sampler.offer(key) ... (for each request)
 *   const choice = chooseLoadSplitKey(sampler.keys(), bounds);
 */
import type { Random } from '../util/random.js';
import { compareBytes } from '../util/bytes.js';
import { SPLIT_KEY_BYTES_MAX, type ShardBounds } from './shard-map.js';

/** Keys a shard's sample holds at most (Algorithm R's reservoir): memory is at most this × the largest key a request may carry. */
export const LOAD_SAMPLE_KEYS = 256;

/** A split by load needs this many sampled requests at least (fewer say too little about where the load is). */
export const LOAD_SAMPLE_MIN = 32;

/**
 * The largest share of the sampled requests one half of a load split may
 * take. A split whose best key leaves more on one side moves too little load
 * to be worth a new Raft group (a hot key carrying most requests, with a few
 * cold keys around it): refused.
 */
export const LOAD_SPLIT_SHARE_MAX = 0.75;

/**
 * A uniform sample of at most `capacity` of the keys offered since the last
 * `clear` (Vitter's Algorithm R: the i-th key offered replaces a random slot
 * with probability capacity / i). Each key is copied when it is taken (a
 * request's buffer may be reused after it was served).
 */
export class KeySampler {
  private readonly sample: Buffer[] = [];
  private offeredValue = 0;

  /** `capacity` ≥ 1. */
  constructor(
    private readonly random: Random,
    private readonly capacity: number,
  ) {}

  /** Keys offered since the last clear (the requests the sample stands for). */
  get offered(): number {
    return this.offeredValue;
  }

  offer(key: Uint8Array): void {
    this.offeredValue++;
    if (this.sample.length < this.capacity) {
      this.sample.push(Buffer.from(key));
      return;
    }
    const slot = this.random.int(this.offeredValue);
    if (slot < this.capacity) this.sample[slot] = Buffer.from(key);
  }

  /** The sampled keys (in no order). */
  keys(): readonly Buffer[] {
    return this.sample;
  }

  clear(): void {
    this.sample.length = 0;
    this.offeredValue = 0;
  }
}

/** The chooser's verdict: split at `key` (`leftShare` of the sampled requests fall below it), or why not. */
export type LoadSplitChoice =
  | { readonly kind: 'split'; readonly key: Buffer; readonly leftShare: number }
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * The key that best halves the sampled requests of a shard with bounds
 * `bounds`: the sampled key k (the split's right part starts at k) that
 * minimises |requests below k − requests at or above k|, among those that
 * leave at least two distinct sampled keys on each side (a half with one key
 * or none spreads nothing: CockroachDB's refusal of a single hot key). Ties
 * go to the smallest key. The key returned is the shortest prefix of k above
 * the sampled key before it (it cuts the sample at the same place; shard
 * boundaries stay short). Samples outside `bounds` (taken before a split)
 * are ignored. Refused, with the reason, when there are fewer than
 * LOAD_SAMPLE_MIN samples, no key qualifies, the best key leaves more than
 * LOAD_SPLIT_SHARE_MAX of the requests on one side, or its shortest cut is
 * longer than SPLIT_KEY_BYTES_MAX.
 */
export function chooseLoadSplitKey(samples: readonly Uint8Array[], bounds: ShardBounds): LoadSplitChoice {
  const inside = samples.filter((key) => compareBytes(key, bounds.start) >= 0 && (bounds.end === null || compareBytes(key, bounds.end) < 0));
  if (inside.length < LOAD_SAMPLE_MIN) return { kind: 'refused', reason: `${inside.length} sampled requests, fewer than ${LOAD_SAMPLE_MIN}` };
  const distinct = countDistinct(inside);
  if (distinct.length === 1) return { kind: 'refused', reason: 'every sampled request is for one key: a split cannot spread a single hot key' };
  let best: { index: number; below: number; imbalance: number } | undefined;
  let below = distinct[0]!.count + distinct[1]!.count;
  // Candidate i splits before distinct[i]: keys 0..i-1 (at least two) go left, i.. (at least two) go right.
  for (let i = 2; i <= distinct.length - 2; i++) {
    const imbalance = Math.abs(below - (inside.length - below));
    if (best === undefined || imbalance < best.imbalance) best = { index: i, below, imbalance };
    below += distinct[i]!.count;
  }
  if (best === undefined) return { kind: 'refused', reason: `the sampled requests are for ${distinct.length} keys: any split would leave a half with fewer than two` };
  const leftShare = best.below / inside.length;
  if (Math.max(leftShare, 1 - leftShare) > LOAD_SPLIT_SHARE_MAX) {
    return { kind: 'refused', reason: `the most even split leaves ${Math.round(100 * Math.max(leftShare, 1 - leftShare))}% of the sampled requests on one side (more than ${100 * LOAD_SPLIT_SHARE_MAX}%): the load is on too few keys` };
  }
  const key = shortestAbove(distinct[best.index - 1]!.key, distinct[best.index]!.key);
  if (key.length > SPLIT_KEY_BYTES_MAX) return { kind: 'refused', reason: `the key that halves the sampled load needs ${key.length} bytes to cut, above the ${SPLIT_KEY_BYTES_MAX} a split key may have` };
  return { kind: 'split', key, leftShare };
}

/** The shortest prefix of `upper` that sorts above `lower` (`lower` < `upper`): a cut between the two. */
function shortestAbove(lower: Uint8Array, upper: Uint8Array): Buffer {
  for (let length = 1; length < upper.length; length++) {
    if (compareBytes(upper.subarray(0, length), lower) > 0) return Buffer.from(upper.subarray(0, length));
  }
  return Buffer.from(upper);
}

function countDistinct(keys: readonly Uint8Array[]): { key: Uint8Array; count: number }[] {
  const sorted = [...keys].sort(compareBytes);
  const distinct: { key: Uint8Array; count: number }[] = [];
  for (const key of sorted) {
    const last = distinct[distinct.length - 1];
    if (last !== undefined && compareBytes(last.key, key) === 0) last.count++;
    else distinct.push({ key, count: 1 });
  }
  return distinct;
}

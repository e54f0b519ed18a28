/**
 * The randomness seam. Core logic (Raft timeouts, skip-list levels, the
 * simulator, fault schedules) takes a `Random` and never calls Math.random(),
 * so a run can be replayed exactly from its seed.
 */
export interface Random {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, bound). `bound` must be a positive safe integer. */
  int(bound: number): number;
  /** Uniform integer in [min, max] inclusive. */
  between(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** A new independent stream derived from this one (for per-node PRNGs). */
  fork(): Random;
}

/**
 * Seeded PRNG: xoshiro128** seeded through splitmix32. Fast, 2^128 - 1 period,
 * and identical on every platform because it only uses 32-bit integer math.
 */
export class SeededRandom implements Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(readonly seed: number) {
    let state = seed >>> 0;
    const splitmix = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix();
    this.s1 = splitmix();
    this.s2 = splitmix();
    this.s3 = splitmix();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }

  next(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }

  int(bound: number): number {
    if (!(bound > 0) || !Number.isSafeInteger(bound)) throw new RangeError(`Random.int: bad bound ${bound}`);
    if (bound <= 0x1_0000_0000) return Math.floor(this.next() * bound);
    const high = this.nextUint32() * 0x1_0000_0000 + this.nextUint32();
    return high % bound;
  }

  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  fork(): Random {
    return new SeededRandom(this.nextUint32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A seed from the operating system's entropy, for production use and for printing before a run. */
export function freshSeed(): number {
  // Only place where we reach for real entropy; everything else derives from the seed.
  return (globalThis.crypto.getRandomValues(new Uint32Array(1))[0] ?? 1) >>> 0;
}

/**
 * Redis's glob patterns for SCAN MATCH, on bytes: `*` any run of bytes, `?`
 * one byte, `[abc]` `[^abc]` `[a-z]` a set, `\x` the byte x itself.
 *
 * SCAN turns the pattern into a key range first: its literal prefix (the
 * bytes before the first special character) bounds the range read, and the
 * whole pattern then filters the page. `user:*` reads exactly the keys
 * starting with `user:`; `*:42` reads everything and keeps what matches.
 */

const STAR = 0x2a;
const QUESTION = 0x3f;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const BACKSLASH = 0x5c;
const CARET = 0x5e;
const DASH = 0x2d;

/** The bytes every key matching `pattern` starts with (up to the first `*`, `?`, `[` or `\`). */
export function literalPrefix(pattern: Buffer): Buffer {
  let end = 0;
  while (end < pattern.length && ![STAR, QUESTION, OPEN, BACKSLASH].includes(pattern[end]!)) end++;
  return pattern.subarray(0, end);
}

/** True when `pattern` is `<literal>*`: every key in the prefix range matches, no filtering needed. */
export function isPrefixPattern(pattern: Buffer): boolean {
  const prefix = literalPrefix(pattern);
  return prefix.length === pattern.length - 1 && pattern[pattern.length - 1] === STAR;
}

/** Whether `key` matches `pattern` (Redis's stringmatchlen, case-sensitive). */
export function globMatch(pattern: Buffer, key: Buffer): boolean {
  return matchFrom(pattern, 0, key, 0, { steps: 0 });
}

/** Bound on backtracking work: a pattern like `*a*a*a*a*b` cannot pin a CPU (Redis bounds nesting similarly). */
const STEPS_MAX = 1_000_000;

function matchFrom(pattern: Buffer, p: number, key: Buffer, k: number, budget: { steps: number }): boolean {
  while (p < pattern.length) {
    if (++budget.steps > STEPS_MAX) return false;
    const byte = pattern[p]!;
    if (byte === STAR) {
      while (p + 1 < pattern.length && pattern[p + 1] === STAR) p++;
      if (p + 1 === pattern.length) return true;
      for (let from = k; from <= key.length; from++) if (matchFrom(pattern, p + 1, key, from, budget)) return true;
      return false;
    }
    if (k >= key.length) return false;
    if (byte === QUESTION) {
      p++;
      k++;
      continue;
    }
    if (byte === OPEN) {
      const set = matchSet(pattern, p + 1, key[k]!);
      if (!set.matched) return false;
      p = set.next;
      k++;
      continue;
    }
    const literal = byte === BACKSLASH && p + 1 < pattern.length ? pattern[++p]! : byte;
    if (literal !== key[k]) return false;
    p++;
    k++;
  }
  return k === key.length;
}

/** Matches `byte` against the set starting after `[` at `from`; `next` is the index after `]` (or the end). */
function matchSet(pattern: Buffer, from: number, byte: number): { matched: boolean; next: number } {
  let p = from;
  const negate = pattern[p] === CARET;
  if (negate) p++;
  let matched = false;
  while (p < pattern.length && pattern[p] !== CLOSE) {
    if (pattern[p] === BACKSLASH && p + 1 < pattern.length) {
      p++;
      if (pattern[p] === byte) matched = true;
      p++;
    } else if (p + 2 < pattern.length && pattern[p + 1] === DASH && pattern[p + 2] !== CLOSE) {
      const low = Math.min(pattern[p]!, pattern[p + 2]!);
      const high = Math.max(pattern[p]!, pattern[p + 2]!);
      if (byte >= low && byte <= high) matched = true;
      p += 3;
    } else {
      if (pattern[p] === byte) matched = true;
      p++;
    }
  }
  return { matched: negate ? !matched : matched, next: Math.min(p + 1, pattern.length) };
}

/**
 * The checks of the leaderless register (workloads.ts, causal register), pure
 * functions of the history. Values are unique per run, so a value names the
 * write that made it; a put's `supersedes` is the values of the read whose
 * causal context it sent: exactly the versions it replaces (dotted version
 * vectors: a context covers what the read returned and everything those had
 * replaced, and nothing written concurrently).
 *
 *   no-lost-writes  after heal and repair, every acknowledged put is in the
 *                   final read of its key, or was replaced: some put that
 *                   happened (acknowledged, or seen by a read) supersedes it.
 *                   Every value read was written by a put that may have
 *                   happened (no phantoms). Siblings are allowed; counted.
 *   quorum-reads    only with R + W > N and no stand-ins (every member owns
 *                   every key): a read that began after a put was acknowledged
 *                   returns it, or a value whose causal past (the transitive
 *                   `supersedes`) holds it (docs/leaderless.md, Guarantees).
 */
import type { CheckOutcome } from './checks.js';
import { formatOp, outcome } from './checks.js';
import type { HistoryOp } from './history.js';

interface KeyHistory {
  readonly puts: HistoryOp[];
  readonly reads: HistoryOp[];
}

function byKey(history: readonly HistoryOp[]): Map<string, KeyHistory> {
  const keys = new Map<string, KeyHistory>();
  for (const op of history) {
    if (op.op !== 'put' && op.op !== 'get') continue;
    let entry = keys.get(op.key);
    if (entry === undefined) keys.set(op.key, (entry = { puts: [], reads: [] }));
    if (op.op === 'put' && op.status !== 'fail') entry.puts.push(op);
    if (op.op === 'get' && op.status === 'ok') entry.reads.push(op);
  }
  return keys;
}

const valuesOf = (read: HistoryOp): readonly string[] => read.out as string[];

export function checkCausalLostWrites(history: readonly HistoryOp[], finalFromS: number): CheckOutcome {
  const problems: string[] = [];
  let siblingKeys = 0;
  let siblingsMax = 0;
  for (const [key, { puts, reads }] of byKey(history)) {
    const written = new Map(puts.map((put) => [put.value as string, put]));
    const seen = new Set(reads.flatMap((read) => valuesOf(read)));
    for (const read of reads) {
      siblingsMax = Math.max(siblingsMax, valuesOf(read).length);
      for (const value of valuesOf(read)) if (!written.has(value)) problems.push(`key ${key}: read ${JSON.stringify(value)}, which no put that may have happened wrote: ${formatOp(read)}`);
    }
    const acknowledged = puts.filter((put) => put.status === 'ok');
    const final = reads.filter((read) => read.call >= finalFromS).at(-1);
    if (final === undefined) {
      if (acknowledged.length > 0) problems.push(`key ${key}: no successful final read, so its ${acknowledged.length} acknowledged puts cannot be checked`);
      continue;
    }
    if (valuesOf(final).length > 1) siblingKeys++;
    const happened = (put: HistoryOp): boolean => put.status === 'ok' || seen.has(put.value as string);
    const replaced = new Map<string, HistoryOp>();
    for (const put of puts) if (happened(put)) for (const value of put.supersedes ?? []) replaced.set(value, put);
    const present = new Set(valuesOf(final));
    for (const put of acknowledged) {
      if (present.has(put.value as string) || replaced.has(put.value as string)) continue;
      problems.push(`key ${key}: acknowledged put LOST (not in the final read, and no put that happened superseded it): ${formatOp(put)}; final read ${formatOp(final)}`);
    }
  }
  const summary = `no acknowledged put lost; ${siblingKeys} keys end with siblings (at most ${siblingsMax} siblings in a read)`;
  return outcome('no-lost-writes', problems, summary, `${problems.length} lost or phantom values`);
}

export function checkQuorumReads(history: readonly HistoryOp[]): CheckOutcome {
  const problems: string[] = [];
  let checked = 0;
  for (const [key, { puts, reads }] of byKey(history)) {
    const past = new CausalPast(puts);
    const acknowledged = puts.filter((put) => put.status === 'ok').sort((a, b) => a.ret! - b.ret!);
    const reported = new Set<HistoryOp>();
    for (const read of reads) {
      checked++;
      const covered = past.coveredBy(valuesOf(read));
      for (const put of acknowledged) {
        if (put.ret! >= read.call) break;
        if (covered(put.value as string) || reported.has(put)) continue;
        reported.add(put); // once per put: every later read would repeat it
        problems.push(`key ${key}: a read missed a put acknowledged before it began, and nothing it returned supersedes that put: ${formatOp(read)} after ${formatOp(put)}`);
      }
    }
  }
  return outcome('quorum-reads', problems, `every one of ${checked} reads saw every put acknowledged before it began (or what superseded it)`, `${problems.length} acknowledged puts missed by later reads`);
}

/**
 * The causal past of every value of one key: the transitive closure of
 * `supersedes`, as one bitset over the key's puts per put (n²/8 bytes: 4.5 MB
 * for 6,000 puts of a key, a 10-minute soak's worth). Puts are taken in call
 * order: a put supersedes only values a read returned before it was called.
 */
class CausalPast {
  private readonly index = new Map<string, number>();
  private readonly bits: Uint32Array[] = [];

  constructor(puts: readonly HistoryOp[]) {
    const ordered = [...puts].sort((a, b) => a.call - b.call);
    const words = Math.ceil(ordered.length / 32);
    ordered.forEach((put, i) => this.index.set(put.value as string, i));
    for (const put of ordered) {
      const bits = new Uint32Array(words);
      for (const value of put.supersedes ?? []) {
        const j = this.index.get(value);
        if (j === undefined) continue; // never written: the lost-write check reports phantoms
        bits[j >>> 5]! |= 1 << (j & 31);
        const older = this.bits[j];
        if (older !== undefined) for (let w = 0; w < words; w++) bits[w]! |= older[w]!;
      }
      this.bits.push(bits);
    }
  }

  /** Whether a value is among `values` or in the causal past of one of them. */
  coveredBy(values: readonly string[]): (value: string) => boolean {
    const own = values.map((value) => this.index.get(value)).filter((i): i is number => i !== undefined);
    return (value) => {
      const i = this.index.get(value);
      return i !== undefined && own.some((j) => j === i || (this.bits[j]![i >>> 5]! & (1 << (i & 31))) !== 0);
    };
  }
}

/**
 * Checks of a leaderless history (test tooling). Writes are puts of unique
 * values; each write records the writes its context had seen (transitively:
 * what it read, and what those had seen), so "W is superseded by X" means W
 * is in X's past. Two checks:
 *
 *   - `checkReadsSeeAcknowledgedWrites` (strict quorums with R + W > N):
 *     every read that STARTED after a write was acknowledged returns that
 *     write or a write that supersedes it.
 *   - `checkNoAcknowledgedWriteLost` (any quorum, after healing and repair):
 *     the final contents of each key hold every acknowledged write or a write
 *     that supersedes it.
 *
 * Both are tested on histories they must reject (causal-history.test.ts).
 */

export interface WriteRecord {
  readonly id: number;
  readonly key: string;
  /** Ids of the writes this write's context had seen (transitively closed). */
  readonly past: ReadonlySet<number>;
  readonly startMs: number;
  /** When it was acknowledged; null when it failed or never answered. */
  readonly ackMs: number | null;
}

export interface ReadRecord {
  readonly key: string;
  readonly startMs: number;
  readonly endMs: number;
  /** Ids of the writes whose values the read returned. */
  readonly values: readonly number[];
}

export interface CausalViolation {
  /** The last two come from the simulator's own convergence check: owners that differ, hints never delivered. */
  readonly kind: 'stale-read' | 'lost-write' | 'unknown-value' | 'divergence' | 'hint-left' | 'handoff-missed';
  readonly message: string;
}

/** True when `values` hold `write` or a write whose past holds it. */
function shows(values: readonly number[], write: WriteRecord, byId: ReadonlyMap<number, WriteRecord>): boolean {
  return values.some((id) => id === write.id || byId.get(id)?.past.has(write.id) === true);
}

function index(writes: readonly WriteRecord[]): Map<number, WriteRecord> {
  return new Map(writes.map((write) => [write.id, write]));
}

export function checkReadsSeeAcknowledgedWrites(writes: readonly WriteRecord[], reads: readonly ReadRecord[]): CausalViolation[] {
  const byId = index(writes);
  const violations: CausalViolation[] = [];
  for (const read of reads) {
    for (const id of read.values) {
      if (!byId.has(id)) violations.push({ kind: 'unknown-value', message: `a read of ${read.key} returned w${id}, which no one wrote` });
    }
    for (const write of writes) {
      if (write.key !== read.key || write.ackMs === null || write.ackMs >= read.startMs) continue;
      if (!shows(read.values, write, byId)) {
        violations.push({
          kind: 'stale-read',
          message: `a read of ${read.key} at ${read.startMs.toFixed(3)} ms returned [${read.values.map((v) => `w${v}`).join(',')}], missing w${write.id} acknowledged at ${write.ackMs.toFixed(3)} ms and everything superseding it`,
        });
      }
    }
  }
  return violations;
}

export function checkNoAcknowledgedWriteLost(writes: readonly WriteRecord[], finalValues: ReadonlyMap<string, readonly number[]>): CausalViolation[] {
  const byId = index(writes);
  const violations: CausalViolation[] = [];
  for (const write of writes) {
    if (write.ackMs === null) continue;
    const values = finalValues.get(write.key) ?? [];
    if (!shows(values, write, byId)) {
      violations.push({ kind: 'lost-write', message: `w${write.id} to ${write.key}, acknowledged at ${write.ackMs.toFixed(3)} ms, is neither in the final contents [${values.map((v) => `w${v}`).join(',')}] nor superseded by them` });
    }
  }
  return violations;
}

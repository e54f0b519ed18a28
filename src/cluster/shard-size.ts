/**
 * A running byte count per shard group (TiKV's approximate region size), for
 * the size checks of `--shard-split-bytes` (shard-splits.ts) and for the
 * sizes each shard's leader reports to the meta leader (shard-leads.ts).
 *
 * The size of a shard is the bytes of the user keys and values inside its
 * group's bounds (the frozen right-hand keys a split left in the engine are
 * outside them and not counted). Counting them exactly is a scan; this keeps,
 * per group on this member, a **base** and adds what the group applied since:
 *
 *   estimate = base.bytes + (writtenBytes now − writtenBytes at the base)
 *
 * `writtenBytes` (RaftKvMachine) sums the key and value bytes of every applied
 * put, so the estimate never falls below the true size while the base is
 * one (an overwrite or a delete only makes it pessimistic). The base is a
 * count of the keys and values inside the bounds (a scan; exact then). The
 * engine's disk bytes are NOT a bound: the lsm engine stores a shard in
 * fewer bytes than its keys and values (bench/shard-size.ts: 7.1 MiB for
 * 11.6 MB), so the disk filter the checks used before let a shard pass the
 * threshold unsplit.
 *
 * A base is void when the group's data changed other than by applied
 * commands (`dataGeneration`: a split shrank the bounds, a snapshot replaced
 * the state) or the group was reopened (bases are kept per machine object).
 *
 * When a check scans (at most two scans: the count, then the middle key):
 *   - no base (the first check since this member opened or leads the group,
 *     a split or a snapshot);
 *   - the estimate passes the threshold and at least
 *     threshold / RESCAN_FRACTION bytes were written since (TiKV's
 *     region_split_check_diff): a shard just below the threshold under
 *     overwrites, or one above it with no key to split at (one huge key),
 *     is not scanned every round. So a shard may pass the threshold by up to
 *     threshold / RESCAN_FRACTION before it splits.
 *
 * Without a threshold (`--shard-split-bytes 0`) the leader still keeps an
 * estimate of every shard it leads, for the reports (`recount`): it counts a
 * shard with no base, or one whose writes since the base exceed the base
 * (and RECOUNT_MIN_BYTES) — so the estimate overstates the size by at most
 * the larger of the last count and RECOUNT_MIN_BYTES (plus what deletes and
 * shrinking overwrites took away since), and the bytes a recount reads are
 * at most twice those written since the previous one (amortised: a scan
 * costs no more than the writes that made it due, plus one per leadership,
 * reopen, split or snapshot). The caller bounds the bytes scanned a round.
 */
import type { ShardBounds } from '../shard/shard-map.js';
import { compareBytes } from '../util/bytes.js';
import type { KvStateMachine } from '../kv/state-machine.js';
import type { RaftKvMachine } from './raft-kv-machine.js';

/** A counted base is scanned again only after threshold / RESCAN_FRACTION more bytes were written (TiKV: split size / 16). */
export const RESCAN_FRACTION = 16;

/** Without a threshold, a base is counted again only once more than this many bytes (and more than the base) were written since it. */
export const RECOUNT_MIN_BYTES = 1 << 20;

interface SizeBase {
  readonly generation: number;
  /** The machine's `writtenBytes` when the base was taken. */
  readonly writtenBytes: number;
  /** Keys and values inside the bounds, counted by a scan. */
  readonly bytes: number;
}

export class ShardSizes {
  private readonly bases = new WeakMap<RaftKvMachine, SizeBase>();
  private scansValue = 0;

  /** `splitBytes` >= 1: the threshold checks compare against. */
  constructor(private readonly splitBytes: number) {}

  /** Counting scans made so far (each check scans at most twice: the count and the middle key). */
  get scans(): number {
    return this.scansValue;
  }

  /** The estimate of `machine`'s keys and values inside its bounds (an upper bound), or undefined when it has no valid base on this member. */
  estimate(machine: RaftKvMachine): number | undefined {
    const base = this.baseOf(machine);
    return base === undefined ? undefined : base.bytes + (machine.writtenBytes - base.writtenBytes);
  }

  /**
   * Checks the group of `machine` (whose bounds are `bounds`) against the
   * threshold: the key to split it at, its middle key by bytes, when its keys
   * and values pass the threshold (and some key but the first halves them);
   * else undefined. Scans only as the file comment says.
   */
  async check(machine: RaftKvMachine, bounds: ShardBounds): Promise<Buffer | undefined> {
    const limit = this.splitBytes;
    const base = this.baseOf(machine);
    if (base !== undefined) {
      const grown = machine.writtenBytes - base.writtenBytes;
      if (base.bytes + grown <= limit) return undefined;
      if (grown < limit / RESCAN_FRACTION) return undefined;
    }
    const total = await this.countBase(machine, bounds);
    if (total <= limit) return undefined;
    const key = await this.middleKey(machine.machine, bounds, total);
    // A split is asked for: count again after it (or, if it fails, at the next check).
    if (key !== undefined) this.bases.delete(machine);
    return key;
  }

  /** Whether `recount` would scan `machine` (no valid base, or its writes since the base passed the base and RECOUNT_MIN_BYTES). */
  recountDue(machine: RaftKvMachine): boolean {
    const base = this.baseOf(machine);
    return base === undefined || machine.writtenBytes - base.writtenBytes > Math.max(base.bytes, RECOUNT_MIN_BYTES);
  }

  /**
   * Counts `machine`'s keys and values inside `bounds` (one scan) when
   * `recountDue`, for an estimate without a split threshold; resolves with
   * the bytes counted (0 when no scan was due).
   */
  async recount(machine: RaftKvMachine, bounds: ShardBounds): Promise<number> {
    return this.recountDue(machine) ? this.countBase(machine, bounds) : 0;
  }

  /** Counts `machine`'s keys and values inside `bounds` (one scan) as its new base; resolves with the count. */
  private async countBase(machine: RaftKvMachine, bounds: ShardBounds): Promise<number> {
    // Read before the scan: what is applied meanwhile is in the count and in the growth after it (counted twice, never missed).
    const from = { generation: machine.dataGeneration, writtenBytes: machine.writtenBytes };
    const total = await this.count(machine.machine, bounds);
    this.bases.set(machine, { ...from, bytes: total });
    return total;
  }

  private baseOf(machine: RaftKvMachine): SizeBase | undefined {
    const base = this.bases.get(machine);
    return base !== undefined && base.generation === machine.dataGeneration ? base : undefined;
  }

  private async count(machine: KvStateMachine, bounds: ShardBounds): Promise<number> {
    this.scansValue++;
    let total = 0;
    for await (const item of itemsIn(machine, bounds)) total += item.key.length + item.value.length;
    return total;
  }

  /** The first key at which the bytes seen reach half of `total`, unless that is the first key of the bounds (nothing to split off). */
  private async middleKey(machine: KvStateMachine, bounds: ShardBounds, total: number): Promise<Buffer | undefined> {
    this.scansValue++;
    let seen = 0;
    for await (const item of itemsIn(machine, bounds)) {
      seen += item.key.length + item.value.length;
      if (seen >= total / 2) return compareBytes(item.key, bounds.start) > 0 ? Buffer.from(item.key) : undefined;
    }
    return undefined;
  }
}

async function* itemsIn(machine: KvStateMachine, bounds: ShardBounds): AsyncGenerator<{ key: Buffer; value: Buffer }> {
  const limit = machine.limits.rangeLimitMax;
  const upper = bounds.end === null ? {} : { lt: bounds.end };
  let page = await machine.range({ ...(bounds.start.length > 0 ? { gte: bounds.start } : {}), ...upper, limit });
  for (;;) {
    yield* page;
    if (page.length < limit) return;
    page = await machine.range({ gt: page[page.length - 1]!.key, ...upper, limit });
  }
}

/**
 * Ownership handoff when the membership changes (membership.ts): the data
 * moves to the members that gain ranges before they count in reads, and off
 * the members that lose them afterwards.
 *
 *   transfer(from, to)  step 3 of a change: every key this member stores goes
 *                       to its owners under `to` that are not owners under
 *                       `from`; resolves once each holds it durably, rejects
 *                       if one does not (the change is then aborted).
 *   cleanup()           after the commit: every key this member stores but
 *                       no longer owns goes to its current owners, and once
 *                       all of them hold it, is deleted here (only if nothing
 *                       newer arrived meanwhile). A key an owner could not
 *                       take is kept; passes repeat every `retryMs` until one
 *                       finds no key it does not own — so writes still in
 *                       flight from members that committed later (up to a
 *                       request time) are handed off by the next pass.
 *                       While a NEXT change is pending, a pass hands off and
 *                       deletes nothing (the keys count as left for later):
 *                       that change's transfer step reads this store, and a
 *                       key deleted here after the owners' own transfer
 *                       scans passed it would reach no member that gains it
 *                       (the simulator's membership check caught this).
 *
 * Bounded: keys are read in pages of `pageKeys`, and at most `parallel`
 * pushes are in flight at once.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { NodeId, SiblingSet } from './dvv.js';
import type { PeerLink } from './peer-link.js';
import type { Replica } from './replica.js';
import type { EngineReplicaStore, StoredSet } from './replica-store.js';
import type { Ring } from './ring.js';

export interface OwnershipOptions {
  readonly self: NodeId;
  readonly store: EngineReplicaStore;
  readonly replica: Replica;
  readonly link: PeerLink;
  /** The current ring. */
  readonly ring: () => Ring;
  /** N: owners per key. */
  readonly replicas: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Per-push timeout, ms. */
  readonly timeoutMs: number;
  /** Pause between cleanup passes, ms (default 5000; at least a request time, so in-flight writes have landed). */
  readonly retryMs?: number;
  readonly pageKeys?: number;
  readonly parallel?: number;
  /** True while a membership change is pending (cleanup then leaves keys in place: the file comment). */
  readonly changing: () => boolean;
  /** Test-only (the simulator's mutation check): transfer pushes nothing, cleanup drops without handing off. */
  readonly movesNothing?: boolean;
}

export interface OwnershipFigures {
  /** Keys pushed to a member that gained them (transfer). */
  keysTransferred: number;
  /** Keys deleted here after their owners took them (cleanup). */
  keysHandedOff: number;
}

export class OwnershipHandoff {
  readonly figures: OwnershipFigures = { keysTransferred: 0, keysHandedOff: 0 };
  private timer: TimerHandle | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(private readonly options: OwnershipOptions) {}

  /** Pushes every stored key to its owners under `to` that are not owners under `from` (see the file comment). */
  async transfer(from: Ring, to: Ring): Promise<number> {
    const { replicas, link, timeoutMs } = this.options;
    let pushed = 0;
    await this.forEachStored(async ({ key, set }) => {
      const before = from.preferenceList(key, replicas);
      const gainers = this.options.movesNothing === true ? [] : to.preferenceList(key, replicas).filter((node) => !before.includes(node) && node !== this.options.self);
      await Promise.all(gainers.map((gainer) => applyWithRetry(() => link.apply(gainer, key, set, timeoutMs))));
      pushed += gainers.length;
    });
    this.figures.keysTransferred += pushed;
    return pushed;
  }

  /** Starts a cleanup pass now (or after the one running), repeated until nothing is left. */
  scheduleCleanup(): void {
    if (this.stopped) return;
    this.timer?.cancel();
    const pass = (): void => {
      this.running = (this.running ?? Promise.resolve(0)).then(() => this.cleanup());
      this.running.then(
        (strays) => {
          if (strays > 0 && !this.stopped) this.timer = this.options.clock.setTimer(Math.max(this.options.retryMs ?? 5000, this.options.timeoutMs), pass);
        },
        (error: unknown) => {
          this.options.logger.warn({ err: error }, 'ownership cleanup failed');
          if (!this.stopped) this.timer = this.options.clock.setTimer(Math.max(this.options.retryMs ?? 5000, this.options.timeoutMs), pass);
        },
      );
    };
    pass();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** One cleanup pass; resolves with the keys it found that this member does not own (handed off or left for later). */
  async cleanup(): Promise<number> {
    const { replicas, link, timeoutMs, replica } = this.options;
    let strays = 0;
    await this.forEachStored(async ({ key, set }) => {
      const owners = this.options.ring().preferenceList(key, replicas);
      if (owners.includes(this.options.self)) return;
      strays++;
      if (this.options.changing()) return;
      try {
        if (this.options.movesNothing !== true) await Promise.all(owners.map((owner) => link.apply(owner, key, set, timeoutMs)));
      } catch {
        return;
      }
      if (await replica.dropIfUnchanged(key, set)) this.figures.keysHandedOff++;
    });
    return strays;
  }

  /** Runs `visit` on every stored key, `parallel` at a time; stops at the first rejection (it propagates). */
  private async forEachStored(visit: (entry: { key: Buffer; set: SiblingSet }) => Promise<void>): Promise<void> {
    const pageKeys = this.options.pageKeys ?? 500;
    const parallel = this.options.parallel ?? 16;
    let after: Buffer | undefined;
    for (;;) {
      const page: StoredSet[] = await this.options.store.scan(after === undefined ? { limit: pageKeys } : { gt: after, limit: pageKeys });
      for (let start = 0; start < page.length; start += parallel) {
        await Promise.all(page.slice(start, start + parallel).map(({ key, set }) => visit({ key: Buffer.from(key), set })));
      }
      if (page.length < pageKeys || this.stopped) return;
      after = Buffer.from(page[page.length - 1]!.key);
    }
  }
}

/** Attempts per key a transfer makes to reach a gainer: one lost message or timeout does not fail the whole change. */
const APPLY_ATTEMPTS = 3;

async function applyWithRetry(apply: () => Promise<boolean>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await apply();
      return;
    } catch (error) {
      if (attempt >= APPLY_ATTEMPTS) throw error;
    }
  }
}

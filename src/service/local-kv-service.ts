/**
 * `LocalKvService`: today's single node, on the key-value state machine.
 *
 * Writes queue; one loop at a time (started after the current I/O phase when
 * writes are arriving together, so the writes of one event-loop turn form one
 * group; at once for a lone write: `startApplying`) takes everything queued (up to
 * GROUP_BYTES_MAX bytes / GROUP_OPS_MAX ops, at least one command), numbers
 * the commands with consecutive indexes after the applied index, and applies
 * them as ONE `applyBatch`: one engine batch and one fsync for the group
 * (group commit, as the engine base did for plain writes). Each command's
 * revision is its index, so revisions come from the persisted applied index
 * and never repeat across restarts. Reads go straight to the state machine;
 * `consistency` is accepted and trivially satisfied (a write is answered only
 * after it is applied, so every later read sees it).
 *
 * Bounds: queued write bytes (`writeQueueBytesMax`, then IMPULSE_ERR_OVERLOADED);
 * group size as above.
 */
import { ImpulseError } from '../errors.js';
import { type KvCommand, type KvLimits, validateCommand } from '../kv/command.js';
import { type ContentDigest, contentDigest } from '../kv/digest.js';
import type { StoredValue } from '../kv/record.js';
import { type KvItem, type KvStateMachine, APPLY_BYTES_SOFT, APPLY_OPS_SOFT } from '../kv/state-machine.js';
import type { RangeOptions, READ_NOT_SYNC } from '../storage/engine.js';
import { type KvService, READ_CONSISTENCIES, type ReadOptions, type ServiceHealth, type ServiceStatus, type WriteOutcome, engineServiceHealth, storageStatus } from './kv-service.js';
import { outcomeOf } from './outcome.js';

/** A group stays under the state machine's split thresholds, so it is one engine batch. */
const GROUP_BYTES_MAX = APPLY_BYTES_SOFT / 2;
const GROUP_OPS_MAX = APPLY_OPS_SOFT / 2;

export interface LocalKvServiceOptions {
  readonly machine: KvStateMachine;
  /** Bytes of writes that may wait before new ones are refused with IMPULSE_ERR_OVERLOADED. Default 256 MiB. */
  readonly writeQueueBytesMax?: number;
}

interface PendingWrite {
  readonly command: KvCommand;
  readonly bytes: number;
  readonly resolve: (outcome: WriteOutcome) => void;
  readonly reject: (error: unknown) => void;
}

export class LocalKvService implements KvService {
  readonly limits: KvLimits;
  private readonly machine: KvStateMachine;
  private readonly writeQueueBytesMax: number;
  private readonly queue: PendingWrite[] = [];
  private queuedBytes = 0;
  private applying: Promise<void> | undefined;
  private closed = false;
  /** Figures: apply groups, and the commands they carried. */
  private groups = 0;
  private groupedWrites = 0;
  /** Writes that arrived in this event-loop turn so far, and in the last turn that had any (`startApplying`). */
  private turnWrites = 0;
  private lastTurnWrites = 0;

  constructor(options: LocalKvServiceOptions) {
    this.machine = options.machine;
    this.limits = options.machine.limits;
    this.writeQueueBytesMax = options.writeQueueBytesMax ?? 256 * 1024 * 1024;
  }

  get(key: Uint8Array, options?: ReadOptions): Promise<StoredValue | undefined> {
    try {
      checkReadOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.machine.get(key);
  }

  getSync(key: Uint8Array, options?: ReadOptions): StoredValue | undefined | typeof READ_NOT_SYNC {
    checkReadOptions(options);
    return this.machine.getSync(key);
  }

  getSyncLatin1(keyLatin1: string): StoredValue | undefined | typeof READ_NOT_SYNC {
    return this.machine.getSyncLatin1(keyLatin1);
  }

  async range(query: RangeOptions, options?: ReadOptions): Promise<KvItem[]> {
    checkReadOptions(options);
    return this.machine.range(query);
  }

  write(command: KvCommand): Promise<WriteOutcome> {
    let bytes: number;
    try {
      if (this.closed) throw new ImpulseError('IMPULSE_ERR_SHUTTING_DOWN', 'the service is closing and takes no new writes');
      bytes = validateCommand(command, this.limits) + command.ops.length * 16;
      if (this.queuedBytes + bytes > this.writeQueueBytesMax && this.queue.length > 0) {
        throw new ImpulseError('IMPULSE_ERR_OVERLOADED', `${this.queuedBytes} bytes of writes are already waiting; the limit is ${this.writeQueueBytesMax}`);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<WriteOutcome>((resolve, reject) => {
      this.queue.push({ command, bytes, resolve, reject });
      this.queuedBytes += bytes;
      this.startApplying();
    });
  }

  async status(): Promise<ServiceStatus> {
    const engine = this.machine.engine;
    const stats = await this.machine.stats();
    return {
      mode: 'local',
      engine: engine.name,
      durable: engine.supports.durable,
      sync: engine.supports.durable ? engine.syncMode : 'none',
      durability: engine.durability,
      appliedIndex: this.machine.appliedIndex,
      durableAppliedIndex: this.machine.durableAppliedIndex,
      keyCount: stats.keyCount ?? null,
      diskBytes: stats.diskBytes ?? null,
      sessions: stats.sessions,
      limits: this.limits,
      storage: storageStatus(engine),
      figures: { ...stats.figures, apply_groups: this.groups, apply_group_writes: this.groupedWrites, write_queue_bytes: this.queuedBytes, sessions: stats.sessions },
    };
  }

  digest(): Promise<ContentDigest> {
    return contentDigest(this.machine);
  }

  health(): ServiceHealth {
    const failure = this.machine.failedWith;
    if (failure !== undefined) return { status: 'failed', reason: `writes stopped after a failed write: ${failure.message}` };
    if (this.closed || !this.machine.engine.isOpen) return { status: 'unavailable', reason: 'the store is closed' };
    return engineServiceHealth(this.machine.engine);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.applying !== undefined) await this.applying;
    await this.machine.close();
  }

  /**
   * Starts the apply loop for a write just queued, unless it runs already.
   *
   * Writes arriving together wait for the end of the event loop's current I/O
   * phase (setImmediate), so every write that arrives in this turn — one per
   * connection whose request was ready — joins the first group. Started at
   * once, a write to a non-durable engine is applied in microtasks before the
   * next connection's request is even parsed: every write became a group of
   * one with its own chain of ~10 promises (measured in process: 6 µs of CPU
   * per write alone, 2 µs per write in groups of 100).
   *
   * A lone write — the first of its turn, after a turn with at most one —
   * starts at once: one client writing one request after another would
   * otherwise wait a loop phase per write for company that never comes
   * (bench/seq-latency.ts). Under concurrent writers a turn has several
   * writes, so the next turn's first write waits again. A wrong guess costs
   * one extra group (that first write alone) for each turn of several writes
   * that follows a turn of one: once when writers start together, more often
   * if the load alternates between the two (concurrent.ts under load could not
   * tell such a cost apart from noise: docs/benchmarks.md).
   */
  private startApplying(): void {
    const lone = this.turnWrites === 0 && this.lastTurnWrites <= 1;
    if (this.turnWrites++ === 0) {
      setImmediate(() => {
        this.lastTurnWrites = this.turnWrites;
        this.turnWrites = 0;
      });
    }
    this.applying ??= lone ? this.applyLoop() : this.applySoon();
  }

  /** Starts the apply loop once the event loop's current I/O phase is over (`startApplying`). */
  private async applySoon(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.applyLoop();
  }

  /** Applies queued writes group by group until the queue is empty. */
  private async applyLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.takeGroup();
        const first = this.machine.appliedIndex + 1;
        this.groups++;
        this.groupedWrites += group.length;
        try {
          const results = await this.machine.applyBatch(group.map((pending, offset) => ({ index: first + offset, term: 0, type: 'command', command: pending.command })));
          group.forEach((pending, offset) => settle(pending, () => outcomeOf(results[offset]!)));
        } catch (error) {
          for (const pending of group) pending.reject(error);
        } finally {
          for (const pending of group) this.queuedBytes -= pending.bytes;
        }
      }
    } finally {
      this.applying = undefined;
    }
  }

  private takeGroup(): PendingWrite[] {
    let count = 0;
    let bytes = 0;
    let ops = 0;
    for (const next of this.queue) {
      if (count > 0 && (bytes + next.bytes > GROUP_BYTES_MAX || ops + next.command.ops.length > GROUP_OPS_MAX)) break;
      count++;
      bytes += next.bytes;
      ops += next.command.ops.length;
    }
    return this.queue.splice(0, count);
  }
}

function settle(pending: PendingWrite, outcome: () => WriteOutcome): void {
  try {
    pending.resolve(outcome());
  } catch (error) {
    pending.reject(error);
  }
}

function checkReadOptions(options: ReadOptions | undefined): void {
  const consistency = options?.consistency;
  if (consistency !== undefined && !READ_CONSISTENCIES.includes(consistency)) {
    throw new ImpulseError('IMPULSE_ERR_QUERY_INVALID', `consistency must be ${READ_CONSISTENCIES.join(' or ')}`);
  }
}

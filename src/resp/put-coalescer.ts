/**
 * Plain writes of ALL connections, gathered for one turn of the event loop
 * and sent to the service as one command.
 *
 * Without pipelining every connection has at most one write in flight, so a
 * connection's own put groups (connection.ts) hold one SET each, and each SET
 * cost one service command: one apply, one engine batch, one log append (and,
 * on a durable engine without fsync, one write system call) per SET. Under
 * load many connections become readable in the same poll of the event loop;
 * their plain writes, submitted here, wait until the poll's callbacks have all
 * run (`defer`: setImmediate, the loop's check phase, before it polls again) and
 * then go as one command, within the service's batch limits.
 *
 * Why this keeps the contracts:
 *   - only plain puts come here (`CommandSpec.puts`: SET k v, MSET), no
 *     conditions: putting them together in one atomic command is a serial
 *     order of writes that were all in flight at once, so linearizable; a
 *     later put of a key wins, as in the order submitted;
 *   - a submission is answered only when the command holding it is applied;
 *     the service's error, if any, is every submitter's error (it refused or
 *     lost the command as a whole: nothing of it, or unknown, as for a command
 *     of their own);
 *   - a service may refuse a command for holding several keys, before
 *     applying anything (`refusedAsBatch`: a sharded service when the keys lie
 *     in several shards — asked to, since it would otherwise commit them as a
 *     transaction across shards, dearer than separate writes — a leaderless
 *     one for any second op): then each
 *     submission is written on its own, and gets its own answer (a submission
 *     refused the same way gets that refusal, and its connection splits it).
 *
 * Bounds: a batch holds at most `batchOpsMax` ops and `batchBytesMax` bytes
 * (then the next batch starts); a turn's batches are bounded by what the
 * connections may hold (pipelineDepthMax commands each).
 */
import { isImpulseError } from '../errors.js';
import type { KvLimits, KvOp } from '../kv/command.js';
import type { KvService } from '../service/kv-service.js';

/**
 * Whether `error` is a service's refusal of a command for holding several
 * keys, with nothing applied: IMPULSE_ERR_BATCH_CROSS_SHARD (sharded: keys of
 * several shards) or IMPULSE_ERR_LEADERLESS_UNSUPPORTED (leaderless: one key
 * per write; asked only of unconditional puts, so their number is the reason).
 */
export function refusedAsBatch(error: unknown): boolean {
  return isImpulseError(error, 'IMPULSE_ERR_BATCH_CROSS_SHARD') || isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_UNSUPPORTED');
}

interface Submission {
  readonly ops: readonly KvOp[];
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

interface Batch {
  readonly submissions: Submission[];
  ops: number;
  bytes: number;
}

export class PutCoalescer {
  /** Batches of this turn, sent when `defer` runs; the last one takes new submissions. */
  private batches: Batch[] = [];

  /**
   * @param defer runs its callback once the current turn's I/O callbacks have run
   *   (setImmediate in the server; a test may run it when it wants).
   */
  constructor(
    private readonly service: KvService,
    private readonly limits: Pick<KvLimits, 'batchOpsMax' | 'batchBytesMax'>,
    private readonly defer: (send: () => void) => void = setImmediate,
  ) {}

  /**
   * Puts `ops` (already validated: `bytes` is their size as `validateCommand`
   * counts it, within the limits) in this turn's command; resolves once it is
   * applied, rejects with the service's error.
   */
  submit(ops: readonly KvOp[], bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.batches.length === 0) this.defer(() => this.send());
      let batch = this.batches.at(-1);
      if (batch === undefined || batch.ops + ops.length > this.limits.batchOpsMax || batch.bytes + bytes > this.limits.batchBytesMax) {
        batch = { submissions: [], ops: 0, bytes: 0 };
        this.batches.push(batch);
      }
      batch.submissions.push({ ops, resolve, reject });
      batch.ops += ops.length;
      batch.bytes += bytes;
    });
  }

  private send(): void {
    const batches = this.batches;
    this.batches = [];
    for (const { submissions } of batches) void this.write(submissions);
  }

  /** Writes one batch as one command; when the service refuses it for its keys (`refusedAsBatch`), each submission on its own. Never rejects. */
  private async write(submissions: readonly Submission[]): Promise<void> {
    const ops = submissions.length === 1 ? submissions[0]!.ops : submissions.flatMap((submission) => submission.ops);
    try {
      await this.service.write({ ops }, { refuseCrossShard: true }); // unrelated writes: sent apart rather than as a transaction across shards
      for (const submission of submissions) submission.resolve();
      return;
    } catch (error) {
      if (submissions.length === 1 || !refusedAsBatch(error)) {
        for (const submission of submissions) submission.reject(error);
        return;
      }
    }
    for (const submission of submissions) this.service.write({ ops: submission.ops }).then(() => submission.resolve(), submission.reject);
  }
}

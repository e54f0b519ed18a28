/**
 * The leader's ReadIndex bookkeeping (Raft dissertation §6.4), batched:
 *
 *   1. A read that arrives before the leader committed an entry of its term
 *      waits (`awaitingTermCommit`): until then its commit index may be stale.
 *   2. Otherwise it is queued for the NEXT confirmation round (`queued`), never
 *      for a round already in flight: that round's heartbeats may have left
 *      before the read arrived, so their answers prove nothing about it.
 *   3. At most one round starts per Ready (`startRound`): it records the commit
 *      index once for every queued read, bumps the round number (`readSeq`),
 *      and the caller sends one heartbeat per follower carrying it. So 100
 *      reads queued between two Ready cycles cost one heartbeat per follower,
 *      not one per read.
 *   4. A read is confirmed when a quorum of voters (the leader included) has
 *      answered a heartbeat of its round or a later one (`confirmed`).
 *
 * Bounded: `size` counts every read held here; the core refuses more than
 * `pendingReadsMax`.
 */
export interface PendingRead {
  readonly requestId: number;
  /** The leader's commit index when the read's round started. */
  readonly index: number;
  readonly seq: number;
}

export class ReadIndexQueue {
  /** The number of the newest confirmation round (0 = none yet in this term). */
  readSeq = 0;
  /** Rounds started in this node's life (for metrics). */
  roundsStarted = 0;
  private awaitingTermCommit: number[] = [];
  private queued: number[] = [];
  private pending: PendingRead[] = [];

  get size(): number {
    return this.awaitingTermCommit.length + this.queued.length + this.pending.length;
  }

  get hasQueued(): boolean {
    return this.queued.length > 0;
  }

  awaitTermCommit(requestId: number): void {
    this.awaitingTermCommit.push(requestId);
  }

  /** The leader committed an entry of its term: the reads that waited for it join the next round. */
  termCommitted(): void {
    this.queued.push(...this.awaitingTermCommit);
    this.awaitingTermCommit = [];
  }

  enqueue(requestId: number): void {
    this.queued.push(requestId);
  }

  /** Starts a round for every queued read at commit index `commit`; returns its readSeq. */
  startRound(commit: number): number {
    this.readSeq++;
    this.roundsStarted++;
    for (const requestId of this.queued) this.pending.push({ requestId, index: commit, seq: this.readSeq });
    this.queued = [];
    return this.readSeq;
  }

  /**
   * Removes and returns the reads confirmed so far, in order. `acked(seq)`
   * counts the voters (leader included) that answered round `seq` or later.
   */
  confirmed(quorum: number, acked: (seq: number) => number): PendingRead[] {
    let count = 0;
    while (count < this.pending.length && acked(this.pending[count]!.seq) >= quorum) count++;
    return this.pending.splice(0, count);
  }

  /** Empties the queue (leadership lost); returns every request id it held. */
  drain(): number[] {
    const ids = [...this.pending.map((read) => read.requestId), ...this.queued, ...this.awaitingTermCommit];
    this.pending = [];
    this.queued = [];
    this.awaitingTermCommit = [];
    this.readSeq = 0;
    return ids;
  }
}

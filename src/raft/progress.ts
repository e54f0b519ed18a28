/**
 * The leader's view of one follower's log (etcd-io/raft `tracker.Progress`)
 * and the three states it moves between:
 *
 *   probe      — where the follower's log ends is unknown: one append at a
 *                time, the next only after an answer or a heartbeat answer;
 *   replicate  — the follower is known to match up to `match`: appends are
 *                pipelined, at most `inflightAppendsMax` messages and
 *                `inflightBytesMax` entry bytes unacknowledged;
 *   snapshot   — the follower needs entries the leader compacted: the driver
 *                is sending the state machine's image. Nothing else is sent
 *                (heartbeats aside) until the follower acknowledges an index
 *                at or past the snapshot, or the driver reports the transfer's
 *                outcome (`RaftNode.reportSnapshot`).
 */

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface Progress {
  /** Highest index known to match the leader's log. */
  match: number;
  /** Next index to send. */
  next: number;
  state: ProgressState;
  /** probe: one append sent, waiting for its answer (or a heartbeat answer) before sending another. */
  probeSent: boolean;
  /** replicate: last index and entry bytes of each append in flight, ascending. */
  inflight: { readonly index: number; readonly bytes: number }[];
  inflightBytes: number;
  /** snapshot: index of the snapshot the core asked the driver to send. */
  pendingSnapshotIndex: number;
  /** Heard from this peer since the last check-quorum round. */
  recentActive: boolean;
  /** Got a successful append answer since the last heartbeat broadcast (detects lost pipelined appends). */
  ackedSinceHeartbeat: boolean;
  /** Highest heartbeat readSeq this peer has answered in the current term. */
  readSeqAcked: number;
  /** Leader ticks since this peer last answered anything (for status). */
  ticksSinceContact: number;
}

export function newProgress(match: number, next: number, self: boolean): Progress {
  return {
    match,
    next,
    state: 'probe',
    probeSent: false,
    inflight: [],
    inflightBytes: 0,
    pendingSnapshotIndex: 0,
    recentActive: self,
    ackedSinceHeartbeat: true,
    readSeqAcked: 0,
    ticksSinceContact: 0,
  };
}

export function becomeProbe(pr: Progress): void {
  pr.state = 'probe';
  pr.next = pr.match + 1;
  pr.probeSent = false;
  clearInflight(pr);
}

export function becomeReplicate(pr: Progress): void {
  pr.state = 'replicate';
  pr.next = pr.match + 1;
  pr.probeSent = false;
  clearInflight(pr);
}

export function becomeSnapshot(pr: Progress, snapshotIndex: number): void {
  pr.state = 'snapshot';
  pr.pendingSnapshotIndex = snapshotIndex;
  pr.probeSent = false;
  clearInflight(pr);
}

/** True when the pipeline to this follower has room for one more append. */
export function inflightHasRoom(pr: Progress, appendsMax: number, bytesMax: number): boolean {
  return pr.inflight.length < appendsMax && pr.inflightBytes < bytesMax;
}

export function addInflight(pr: Progress, index: number, bytes: number): void {
  pr.inflight.push({ index, bytes });
  pr.inflightBytes += bytes;
}

/** Frees the pipeline slots of every append acknowledged up to `index`. */
export function freeInflightTo(pr: Progress, index: number): void {
  while (pr.inflight.length > 0 && pr.inflight[0]!.index <= index) pr.inflightBytes -= pr.inflight.shift()!.bytes;
}

function clearInflight(pr: Progress): void {
  pr.inflight = [];
  pr.inflightBytes = 0;
}

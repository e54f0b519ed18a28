/**
 * The simulator's invariant checks: pure observers. They record what nodes
 * persist, apply and claim, and report a violation the moment a Raft safety
 * property breaks. They never inject faults or change a run.
 *
 *   - election safety: at most one leader per term;
 *   - log matching: an (index, term) pair names one entry, preceded by one
 *     term, on every node that ever persists it;
 *   - leader completeness: a new leader of term T holds every entry of a
 *     term before T that any node applied (above its own snapshot boundary);
 *   - state-machine safety: no node applies a different entry at an index
 *     than another did;
 *   - apply order: each node's state machine applies index after index,
 *     nothing twice and nothing skipped, from its durable applied index;
 *   - commit and applied never go back on a node while it runs (after a
 *     restart they resume from the durable hard state and state machine);
 *   - state-machine replay: a node's state equals the replay of the committed
 *     log up to its applied index (a digest compared with a reference);
 *   - removal safety: a node stops as removed only when a committed
 *     configuration removed it.
 */
import type { ConfState, Entry, NodeId, SnapshotMeta } from '../../src/raft/types.js';
import { applyEntry, digestState, emptyKvState, type KvState } from './kv.js';

export type ViolationKind =
  | 'election-safety'
  | 'log-matching'
  | 'leader-completeness'
  | 'state-machine-safety'
  | 'apply-order'
  | 'commit-monotonic'
  | 'applied-monotonic'
  | 'state-machine-replay'
  | 'removal-safety'
  | 'core-assertion'
  | 'linearizability'
  | 'liveness';

/** The kinds that are Raft safety properties (the mutation check must be caught by one of these). */
export const SAFETY_KINDS: readonly ViolationKind[] = [
  'election-safety',
  'log-matching',
  'leader-completeness',
  'state-machine-safety',
  'apply-order',
  'commit-monotonic',
  'applied-monotonic',
  'state-machine-replay',
  'removal-safety',
  'linearizability',
];

type Report = (kind: ViolationKind, message: string) => void;

export class Invariants {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly entryIdentity = new Map<string, string>();
  private readonly appliedAt = new Map<number, { term: number; digest: string; entry: Entry; by: NodeId }>();
  private maxAppliedIndex = 0;
  /** The reference state machine: the committed log replayed in index order as far as it is known. */
  private readonly reference: KvState;
  private readonly referenceDigests = new Map<number, string>([[0, '']]);
  private pendingReplayChecks: { node: NodeId; index: number; digest: string }[] = [];
  /** Per node and incarnation: the highest commit and applied index seen. */
  private readonly seen = new Map<NodeId, { incarnation: number; commit: number; applied: number }>();
  private readonly removedByCommittedConf = new Set<NodeId>();

  constructor(
    bootstrapConf: ConfState,
    private readonly report: Report,
  ) {
    this.reference = emptyKvState(bootstrapConf);
    this.referenceDigests.set(0, digestState(this.reference));
  }

  /** Election safety and leader completeness for `node`, leader of `term`. True when this is news (first sighting). */
  leader(node: NodeId, term: number, termAt: (index: number) => number | undefined, snapshotIndex: number): boolean {
    const other = this.leaderOfTerm.get(term);
    if (other === node) return false;
    if (other !== undefined) {
      this.report('election-safety', `n${node} and n${other} are both leaders of term ${term}`);
      return true;
    }
    this.leaderOfTerm.set(term, node);
    for (let index = snapshotIndex + 1; index <= this.maxAppliedIndex; index++) {
      const applied = this.appliedAt.get(index);
      // Only entries of EARLIER terms are promised to a new leader: a leader of an older term
      // can still be elected late, by voters that never saw the newer one (it then commits nothing).
      if (applied === undefined || applied.term >= term) continue;
      const have = termAt(index);
      if (have !== applied.term) {
        this.report('leader-completeness', `new leader n${node} (term ${term}) has ${have === undefined ? 'no entry' : `term ${have}`} at ${index}, where n${applied.by} applied term ${applied.term}`);
        return true;
      }
    }
    return true;
  }

  /** Log matching, for entries `node` is persisting; `termAt` is its log. */
  persisted(node: NodeId, entries: readonly Entry[], termAt: (index: number) => number | undefined): void {
    for (const entry of entries) {
      const key = `${entry.index}:${entry.term}`;
      const identity = entryDigest(entry);
      const known = this.entryIdentity.get(key);
      if (known === undefined) this.entryIdentity.set(key, identity);
      else if (known !== identity) return this.report('log-matching', `n${node} stores a different entry at index ${entry.index} term ${entry.term}`);
      const previousTerm = entry.index === entries[0]!.index ? termAt(entry.index - 1) : entries[entries.indexOf(entry) - 1]!.term;
      if (previousTerm === undefined) continue;
      const knownPrevious = this.entryIdentity.get(key + ':prev');
      if (knownPrevious === undefined) this.entryIdentity.set(key + ':prev', `${previousTerm}`);
      else if (knownPrevious !== `${previousTerm}`) {
        return this.report('log-matching', `n${node} has entry ${entry.index}/t${entry.term} after term ${previousTerm}, another node after term ${knownPrevious}`);
      }
    }
  }

  /** State-machine safety and apply order, for entries `node`'s state machine applied after `appliedBefore`. */
  applied(node: NodeId, entries: readonly Entry[], appliedBefore: number): void {
    if (entries.length > 0 && entries[0]!.index !== appliedBefore + 1) {
      this.report('apply-order', `n${node} applied ${entries[0]!.index} right after ${appliedBefore}`);
      return;
    }
    for (const entry of entries) {
      const digest = entryDigest(entry);
      const known = this.appliedAt.get(entry.index);
      if (known === undefined) {
        this.appliedAt.set(entry.index, { term: entry.term, digest, entry, by: node });
        this.maxAppliedIndex = Math.max(this.maxAppliedIndex, entry.index);
      } else if (known.term !== entry.term || known.digest !== digest) {
        return this.report('state-machine-safety', `n${node} applied ${entry.index}/t${entry.term} but n${known.by} applied ${entry.index}/t${known.term} there`);
      }
    }
    this.advanceReference();
  }

  /** A snapshot installed by `node`'s state machine: it must not take the state back. */
  installed(node: NodeId, meta: SnapshotMeta, appliedBefore: number): void {
    if (meta.index < appliedBefore) this.report('applied-monotonic', `n${node} installed a snapshot at ${meta.index} over applied ${appliedBefore}`);
  }

  /** After every step: commit and applied of a running node never go back within one incarnation. */
  progress(node: NodeId, incarnation: number, commit: number, applied: number): void {
    const seen = this.seen.get(node);
    if (seen === undefined || seen.incarnation !== incarnation) {
      this.seen.set(node, { incarnation, commit, applied });
      return;
    }
    if (commit < seen.commit) this.report('commit-monotonic', `n${node} commit index went back from ${seen.commit} to ${commit}`);
    else if (applied < seen.applied) this.report('applied-monotonic', `n${node} applied index went back from ${seen.applied} to ${applied}`);
    seen.commit = commit;
    seen.applied = applied;
  }

  /** `node`'s state at applied index `index` must equal the replay of the committed log up to `index`. */
  stateMachine(node: NodeId, index: number, digest: string): void {
    this.pendingReplayChecks.push({ node, index, digest });
    this.runReplayChecks();
  }

  /** `node` stopped because it learned it was removed. */
  removedStop(node: NodeId): void {
    if (!this.removedByCommittedConf.has(node)) this.report('removal-safety', `n${node} stopped as removed, but no committed configuration removed it`);
  }

  private advanceReference(): void {
    for (let next = this.reference.appliedIndex + 1; ; next++) {
      const known = this.appliedAt.get(next);
      if (known === undefined) break;
      applyEntry(this.reference, known.entry);
      if (known.entry.kind === 'conf-change' && known.entry.change.type === 'remove-node') this.removedByCommittedConf.add(known.entry.change.nodeId);
      this.referenceDigests.set(next, digestState(this.reference));
    }
    this.runReplayChecks();
  }

  private runReplayChecks(): void {
    if (this.pendingReplayChecks.length === 0) return;
    const waiting: typeof this.pendingReplayChecks = [];
    for (const check of this.pendingReplayChecks) {
      const expected = this.referenceDigests.get(check.index);
      if (expected === undefined) waiting.push(check); // the reference has not reached it yet
      else if (expected !== check.digest) this.report('state-machine-replay', `n${check.node}'s state at applied ${check.index} differs from the replay of the committed log`);
    }
    this.pendingReplayChecks = waiting;
  }
}

const digests = new WeakMap<Entry, string>();

/** An entry's identity: its payload (or change and configuration), hashed. */
export function entryDigest(entry: Entry): string {
  let digest = digests.get(entry);
  if (digest !== undefined) return digest;
  const bytes = entry.kind === 'normal' ? entry.data : new TextEncoder().encode(JSON.stringify([entry.change.type, entry.change.nodeId, [...entry.change.context], entry.confState]));
  let h = entry.kind === 'normal' ? 0x811c9dc5 : 0x01000193;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  digest = `${entry.kind[0]}${h.toString(16)}:${bytes.length}`;
  digests.set(entry, digest);
  return digest;
}

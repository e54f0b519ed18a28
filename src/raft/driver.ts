/**
 * The node driver: runs one Raft group's core (raft.ts) on its seams — the
 * log store (storage.ts), the transport and the state machine
 * (driver-seams.ts), and a `Clock` for latency figures. It is THE loop that
 * handles `Ready`, in real nodes and in the simulator alike, so the code the
 * simulator proves is the code that runs.
 *
 *   RaftDriver.start(options, (error, driver) => ...);
 *   driver.tick();                           // from the host's timer, every tick (--tick-ms, src/cluster/config.ts)
 *   driver.receive(from, body);              // a Raft message from the transport (validated here)
 *   driver.receiveSnapshot(from, header, payload, done);   // the image, as the transport delivers it
 *   driver.propose(command, (error, result) => ...);   // once APPLIED, with the state machine's result
 *   driver.readIndex((error) => ...);        // once a linearizable local read may be served
 *   driver.proposeConfChange(change, done);  driver.transferLeadership(target, done);
 *   driver.status();  driver.metrics();  driver.stop();
 *
 * One Ready at a time, in the order `Ready` documents:
 *   1. `logStore.save` of snapshot meta, entries and hard state, and its
 *      `done` (durable) BEFORE
 *   2. sending the messages (a `snapshot` message becomes a transfer of the
 *      state machine's image, reported back to the core), then
 *   3. installing a received snapshot's staged image, applying committed
 *      entries (answering their proposers), answering reads whose index is
 *      applied, then
 *   4. `advance`, and compaction when due.
 * Liberties, each keeping the promise the order protects: a hard state that
 * changes only the commit index is not saved (etcd's MustSync); committed
 * entries that were durable before the Ready apply while it persists; and a
 * LEADER whose term and vote the Ready leaves unchanged (`Ready.persistAsync`)
 * sends, applies (only entries durable already) and advances without waiting
 * for its write — dissertation §10.2.1, etcd raft's async storage writes: the
 * write is queued behind the one in flight (`LogWriter`, which merges the
 * writes of every Ready that came meanwhile into one), and its completion
 * reaches the core as a `persisted` input, the only way the leader's own copy
 * counts towards a commit. Any other Ready waits until every queued write is
 * durable before its own.
 *
 * Callback-driven: the driver never awaits; every seam completes through a
 * callback, synchronously or later. The callbacks the driver hands out
 * (`done` of propose, readIndex, ...) run on its loop and must not throw. Inputs that arrive while a Ready is in
 * flight wait in a bounded inbox. Everything held is bounded (`limits`):
 * beyond a bound a proposal or read fails with IMPULSE_ERR_RAFT_OVERLOADED and
 * a message is dropped (and counted) — Raft tolerates lost messages.
 *
 * Fail-stop: a failed save, compaction, apply, install, or a storage read
 * that throws stops the driver; pending requests fail with
 * IMPULSE_ERR_RAFT_STOPPED and `onStop` says why. A node that learns it was
 * removed from the cluster stops the same way (`onStop({kind: 'removed'})`).
 */
import { ImpulseError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { assert } from '../util/assert.js';
import { parseMessage } from './message.js';
import { RaftNode, type ProgressView, type RaftConfig } from './raft.js';
import { LogWriter } from './log-writer.js';
import type { RaftLogStore } from './storage.js';
import { RAFT_CHANNEL, type GroupMessage, type RaftStateMachine, type RaftTransport, type SnapshotImage } from './driver-seams.js';
import { RaftError, type ConfChange, type Entry, type Message, type NodeId, type Ready, type Role } from './types.js';

export interface RaftDriverLimits {
  /** Proposals (and conf changes) waiting to be applied. */
  readonly pendingProposalsMax: number;
  /** Reads waiting for confirmation or for application of their index. */
  readonly pendingReadsMax: number;
  /** Peer messages waiting while a Ready is in flight; more are dropped. */
  readonly inboxMessagesMax: number;
  /** Ticks waiting while a Ready is in flight; more are dropped (a slow disk must not bank elections). */
  readonly queuedTicksMax: number;
  /** Compact once the durable applied index is this many entries past the kept tail. */
  readonly compactThresholdEntries: number;
  /** Entries kept below the durable applied index at compaction, for followers a little behind (etcd's SnapshotCatchUpEntries). */
  readonly snapshotCatchUpEntries: number;
}

export const DEFAULT_DRIVER_LIMITS: RaftDriverLimits = {
  pendingProposalsMax: 4096,
  pendingReadsMax: 4096,
  inboxMessagesMax: 4096,
  queuedTicksMax: 10,
  compactThresholdEntries: 10_000,
  snapshotCatchUpEntries: 5_000,
};

export type StopReason = { readonly kind: 'removed' } | { readonly kind: 'failed'; readonly error: Error } | { readonly kind: 'closed' };

/**
 * `R` is the state machine's result for one applied entry; `P` the payload of
 * a snapshot image (opaque here: the state machine produces it, the transport
 * carries it, the receiving state machine consumes it). The simulator uses
 * chunk arrays; real nodes a lazy stream of bytes.
 */
export interface RaftDriverOptions<R, P> {
  /** The Raft group (shard) this driver runs; every outbound message carries it. */
  readonly group: number;
  readonly raft: RaftConfig;
  readonly limits?: Partial<RaftDriverLimits>;
  readonly logStore: RaftLogStore;
  readonly transport: RaftTransport<P>;
  readonly stateMachine: RaftStateMachine<R, P>;
  /** For save latency figures only; the Raft timers run on `tick()`. */
  readonly clock: Clock;
  /** The state machine's durable applied index as it opened. */
  readonly appliedIndex: number;
  /** Ids removed by committed configurations (kept by the state machine). */
  readonly removedNodes?: readonly NodeId[];
  /** Called once, when the driver stops. */
  readonly onStop?: (reason: StopReason) => void;
}

export type ProposeDone<R> = (error: RaftError | null, result?: R) => void;
export type ReadDone = (error: RaftError | null) => void;

export interface RaftDriverStatus {
  readonly group: number;
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly snapshotIndex: number;
  readonly lastIndex: number;
  /** On a leader handing leadership over: the target (0 when no transfer runs). */
  readonly transferee: NodeId;
  readonly stopped: boolean;
  /** Per member, on the leader only: match, next, state, lag (leader's last index - match), ticks since last contact. */
  readonly progress: Readonly<Record<string, ProgressView & { readonly lag: number }>>;
}

export interface RaftDriverMetrics {
  proposals: number;
  /** Failed proposals by error code. */
  proposalsFailed: Record<string, number>;
  leaderChanges: number;
  /** Times this node became leader. */
  elections: number;
  campaigns: number;
  reads: number;
  readRounds: number;
  snapshotsSent: number;
  snapshotsReceived: number;
  snapshotsFailed: number;
  compactions: number;
  messagesDropped: number;
  messagesInvalid: number;
  ticksDropped: number;
  saves: number;
  saveLatencyMsTotal: number;
  saveLatencyMsMax: number;
}

type Input<R> =
  | { readonly kind: 'tick' }
  | { readonly kind: 'resume' }
  | { readonly kind: 'message'; readonly message: Message; readonly stagedSnapshot: boolean }
  | { readonly kind: 'propose'; readonly data: Uint8Array; readonly done: ProposeDone<R> }
  | { readonly kind: 'conf-change'; readonly change: ConfChange; readonly done: ProposeDone<R> }
  | { readonly kind: 'read'; readonly done: ReadDone }
  | { readonly kind: 'transfer'; readonly target: NodeId; readonly done: (error: RaftError | null) => void }
  | { readonly kind: 'report-snapshot'; readonly to: NodeId; readonly ok: boolean }
  | { readonly kind: 'persisted'; readonly index: number; readonly term: number }
  | { readonly kind: 'leader-unreachable'; readonly id: NodeId };

interface PendingProposal<R> {
  readonly term: number;
  readonly done: ProposeDone<R>;
}

type Phase = 'idle' | 'in-ready' | 'compacting' | 'stopped';

export class RaftDriver<R, P> {
  readonly group: number;
  readonly id: NodeId;
  private readonly raft: RaftNode;
  private readonly limits: RaftDriverLimits;
  private phase: Phase = 'idle';
  private inbox: Input<R>[] = [];
  private inboxMessages = 0;
  private inboxTicks = 0;
  private inboxRequests = 0;
  private pumping = false;
  private pumpAgain = false;
  /**
   * Proposals waiting to apply, by log index. One index may hold proposals of
   * several terms (this node led, lost the entry, led again): the entry that
   * applies there decides which one, if any, succeeded.
   */
  private readonly proposals = new Map<number, PendingProposal<R>[]>();
  private proposalCount = 0;
  private readonly reads = new Map<number, ReadDone>();
  private readsWaitingApply: { readonly index: number; readonly done: ReadDone }[] = [];
  private nextReadId = 1;
  private readonly snapshotsSending = new Set<NodeId>();
  /** A received image is being staged, or was stepped and its Ready has not finished: one at a time. */
  private snapshotReceiving = false;
  /** A staged snapshot's message was fed to the core since the last Ready started. */
  private snapshotStepped = false;
  /** The Ready in flight is the one that consumed the staged snapshot (installed or ignored it). */
  private readyConsumesStaged = false;
  private lastLeader: NodeId;
  /** Term and vote as last handed to `logStore.save` (a change of either must be durable before any message). */
  private savedTermVote: { term: number; vote: NodeId };
  /** Every write to the log store goes through it: one at a time, leader appends queued and merged. */
  private readonly writer: LogWriter;
  private readonly metricsValue: RaftDriverMetrics = {
    proposals: 0,
    proposalsFailed: {},
    leaderChanges: 0,
    elections: 0,
    campaigns: 0,
    reads: 0,
    readRounds: 0,
    snapshotsSent: 0,
    snapshotsReceived: 0,
    snapshotsFailed: 0,
    compactions: 0,
    messagesDropped: 0,
    messagesInvalid: 0,
    ticksDropped: 0,
    saves: 0,
    saveLatencyMsTotal: 0,
    saveLatencyMsMax: 0,
  };

  /**
   * Opens a driver. When the log store already begins at a snapshot the state
   * machine has not installed (a crash between persisting a received
   * snapshot's meta and installing its staged image), it installs it first.
   */
  static start<R, P>(options: RaftDriverOptions<R, P>, done: (error: Error | null, driver?: RaftDriver<R, P>) => void): void {
    const boundary = options.logStore.snapshotMeta();
    if (options.appliedIndex >= boundary.index) {
      done(null, new RaftDriver(options, options.appliedIndex));
      return;
    }
    options.stateMachine.installSnapshot(boundary, (error) => {
      if (error !== null) done(error);
      else done(null, new RaftDriver(options, boundary.index));
    });
  }

  private constructor(
    private readonly options: RaftDriverOptions<R, P>,
    applied: number,
  ) {
    this.group = options.group;
    this.id = options.raft.id;
    this.limits = { ...DEFAULT_DRIVER_LIMITS, ...options.limits };
    this.raft = new RaftNode(options.raft, { storage: options.logStore, applied, ...(options.removedNodes !== undefined ? { removedNodes: options.removedNodes } : {}) });
    this.lastLeader = this.raft.leaderId;
    const { term, vote } = options.logStore.hardState();
    this.savedTermVote = { term, vote };
    this.writer = new LogWriter(options.logStore, options.clock, {
      onDurable: (index, term) => {
        if (this.phase !== 'stopped') this.enqueue({ kind: 'persisted', index, term });
      },
      onFailed: (error) => this.halt({ kind: 'failed', error }),
      onSaved: (latencyMs) => {
        this.metricsValue.saves++;
        this.metricsValue.saveLatencyMsTotal += latencyMs;
        this.metricsValue.saveLatencyMsMax = Math.max(this.metricsValue.saveLatencyMsMax, latencyMs);
      },
    });
  }

  // ---------------------------------------------------------------- inputs

  /** One tick of the host's timer. */
  tick(): void {
    if (this.phase === 'stopped') return;
    if (this.inboxTicks >= this.limits.queuedTicksMax) {
      this.metricsValue.ticksDropped++;
      return;
    }
    this.inboxTicks++;
    this.enqueue({ kind: 'tick' });
  }

  /**
   * True when the group has nothing in flight: no Ready, compaction, queued
   * input, proposal, read or snapshot transfer, and the core is settled (see
   * `RaftNode.settled`). The host may stop ticking it (quiesce).
   */
  get quiet(): boolean {
    return this.quietPast(() => false);
  }

  /** `quiet`, except that a member `down(raftId)` says is down need not match the leader's log (see `RaftNode.settledPast`). */
  quietPast(down: (raftId: NodeId) => boolean): boolean {
    return (
      this.phase === 'idle' &&
      this.writer.idle &&
      this.inbox.length === 0 &&
      this.proposalCount === 0 &&
      this.reads.size === 0 &&
      this.readsWaitingApply.length === 0 &&
      this.snapshotsSending.size === 0 &&
      !this.snapshotReceiving &&
      this.raft.settledPast(down)
    );
  }

  /**
   * The host's hint that node `id`'s process is gone (see
   * `RaftNode.leaderUnreachable`): a follower of `id` campaigns soon instead
   * of after a whole election timeout. Queued in order with the other inputs.
   */
  leaderUnreachable(id: NodeId): void {
    if (this.phase === 'stopped') return;
    this.enqueue({ kind: 'leader-unreachable', id });
  }

  /** The host ticks this group again after a quiescence (see `RaftNode.resumeTicking`); queued in order with the other inputs. */
  resumeTicking(): void {
    if (this.phase === 'stopped') return;
    this.enqueue({ kind: 'resume' });
  }

  /**
   * A Raft message body from peer `from` (as the transport authenticated it).
   * Invalid bodies are dropped, counted, and returned as the error (for the
   * runtime's log); null when accepted or dropped for a full inbox.
   */
  receive(from: NodeId, body: unknown): RaftError | null {
    if (this.phase === 'stopped') return null;
    let message: Message;
    try {
      message = this.parseFrom(from, body);
    } catch (error) {
      this.metricsValue.messagesInvalid++;
      if (error instanceof RaftError) return error;
      throw error;
    }
    if (message.type === 'snapshot') {
      // A snapshot message without its image cannot be installed: it comes only through receiveSnapshot.
      this.metricsValue.messagesInvalid++;
      return new RaftError('IMPULSE_ERR_RAFT_MESSAGE_INVALID', 'a snapshot message must come with its image');
    }
    this.enqueueMessage(message, false);
    return null;
  }

  /**
   * A snapshot stream from `from`: `header` is the body of the transfer's
   * header (`{ message }`), `payload` the image. The image is staged by the
   * state machine FIRST; only then is the snapshot message stepped. `done`
   * accepts (null) or refuses the stream; the sender reports the outcome.
   * A payload refused before staging starts is not consumed (the host
   * discards it).
   */
  receiveSnapshot(from: NodeId, header: unknown, payload: P, done: (error: Error | null) => void): void {
    if (this.phase === 'stopped') return done(new RaftError('IMPULSE_ERR_RAFT_STOPPED', 'the group stopped on this node'));
    let message: Message;
    try {
      message = this.parseFrom(from, typeof header === 'object' && header !== null ? (header as { message?: unknown }).message : undefined);
      if (message.type !== 'snapshot') throw new RaftError('IMPULSE_ERR_RAFT_MESSAGE_INVALID', 'a snapshot header must carry a snapshot message');
    } catch (error) {
      this.metricsValue.messagesInvalid++;
      return done(error instanceof Error ? error : new Error(String(error)));
    }
    if (this.snapshotReceiving) return done(new RaftError('IMPULSE_ERR_RAFT_OVERLOADED', 'another snapshot is being received'));
    this.snapshotReceiving = true;
    const image: SnapshotImage<P> = { meta: message.snapshot, payload };
    this.options.stateMachine.stageSnapshot(image, (error) => {
      if (error !== null || this.phase === 'stopped') {
        this.snapshotReceiving = false;
        return done(error ?? new RaftError('IMPULSE_ERR_RAFT_STOPPED', 'the group stopped on this node'));
      }
      this.metricsValue.snapshotsReceived++;
      this.enqueueMessage(message, true);
      done(null);
    });
  }

  /** Proposes `command`; `done` once it APPLIED (with the state machine's result) or failed (RaftError). */
  propose(command: Uint8Array, done: ProposeDone<R>): void {
    if (this.refuseRequest(done, this.proposalCount, this.limits.pendingProposalsMax, 'proposals')) return;
    this.metricsValue.proposals++;
    this.enqueue({ kind: 'propose', data: command, done });
  }

  /** Proposes a membership change; `done` once it applied. */
  proposeConfChange(change: ConfChange, done: ProposeDone<R>): void {
    if (this.refuseRequest(done, this.proposalCount, this.limits.pendingProposalsMax, 'proposals')) return;
    this.metricsValue.proposals++;
    this.enqueue({ kind: 'conf-change', change, done });
  }

  /**
   * `done(null)` once a linearizable read may be served from the local state
   * machine: leadership was confirmed by a quorum after this call, and the
   * state machine applied the commit index recorded then.
   */
  readIndex(done: ReadDone): void {
    const held = this.reads.size + this.readsWaitingApply.length;
    if (this.refuseRequest(done, held, this.limits.pendingReadsMax, 'reads')) return;
    this.metricsValue.reads++;
    this.enqueue({ kind: 'read', done });
  }

  /** Starts handing leadership to `target`; `done` with null once started (not completed) or the reason it cannot. */
  transferLeadership(target: NodeId, done: (error: RaftError | null) => void = () => {}): void {
    if (this.phase === 'stopped') return done(stoppedError());
    this.enqueue({ kind: 'transfer', target, done });
  }

  /** Stops the driver (the host closes the group); pending requests fail with IMPULSE_ERR_RAFT_STOPPED. */
  stop(): void {
    this.halt({ kind: 'closed' });
  }

  // ---------------------------------------------------------------- observation

  get stopped(): boolean {
    return this.phase === 'stopped';
  }

  /** The core, for observation by tests and the simulator's invariant checks. Never give it inputs. */
  get node(): RaftNode {
    return this.raft;
  }

  status(): RaftDriverStatus {
    const raft = this.raft;
    const progress: Record<string, ProgressView & { lag: number }> = {};
    for (const id of raft.progressIds()) {
      const view = raft.progressOf(id)!;
      progress[String(id)] = { ...view, lag: raft.lastIndex - view.match };
    }
    return {
      group: this.group,
      id: this.id,
      role: raft.role,
      term: raft.currentTerm,
      leader: raft.leaderId,
      commit: raft.commitIndex,
      applied: raft.appliedIndex,
      snapshotIndex: raft.snapshotIndex,
      lastIndex: raft.lastIndex,
      transferee: raft.transferee,
      stopped: this.stopped,
      progress,
    };
  }

  metrics(): Readonly<RaftDriverMetrics> {
    return { ...this.metricsValue, proposalsFailed: { ...this.metricsValue.proposalsFailed }, campaigns: this.raft.counters.campaigns, readRounds: this.raft.readRounds };
  }

  // ---------------------------------------------------------------- the loop

  private enqueue(input: Input<R>): void {
    if (input.kind === 'propose' || input.kind === 'conf-change' || input.kind === 'read') this.inboxRequests++;
    this.inbox.push(input);
    this.pump();
  }

  private enqueueMessage(message: Message, stagedSnapshot: boolean): void {
    if (this.inboxMessages >= this.limits.inboxMessagesMax && !stagedSnapshot) {
      this.metricsValue.messagesDropped++;
      return;
    }
    this.inboxMessages++;
    this.enqueue({ kind: 'message', message, stagedSnapshot });
  }

  /**
   * Runs the loop until it must wait for a seam. Re-entrant calls (a seam that
   * completes synchronously, a callback that proposes) only ask for another
   * round, so the stack stays flat.
   */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        if (this.phase === 'idle') this.pumpOnce();
      } while (this.pumpAgain);
    } catch (error) {
      // A storage read that failed inside the core (ImpulseError): fail-stop. A broken
      // invariant (AssertionError) stops the driver too, and stays loud.
      this.halt({ kind: 'failed', error: error instanceof Error ? error : new Error(String(error)) });
      if (!(error instanceof ImpulseError)) throw error;
    } finally {
      this.pumping = false;
    }
  }

  /** Feeds the inbox to the core, then starts a Ready or a compaction, or notices removal. */
  private pumpOnce(): void {
    const inputs = this.inbox;
    this.inbox = [];
    this.inboxMessages = 0;
    this.inboxTicks = 0;
    this.inboxRequests = 0;
    for (const input of inputs) this.feed(input);
    const consumesStaged = this.snapshotStepped;
    this.snapshotStepped = false;
    if (this.raft.hasReady()) {
      this.readyConsumesStaged = consumesStaged;
      this.runReady(this.raft.ready());
      return;
    }
    if (consumesStaged) this.snapshotReceiving = false; // the core ignored it (a stale term)
    if (this.raft.removed) {
      this.halt({ kind: 'removed' });
      return;
    }
    this.maybeCompact();
  }

  private feed(input: Input<R>): void {
    const raft = this.raft;
    switch (input.kind) {
      case 'tick':
        return raft.tick();
      case 'resume':
        return raft.resumeTicking();
      case 'message':
        if (input.stagedSnapshot) this.snapshotStepped = true;
        return raft.step(input.message);
      case 'propose':
      case 'conf-change': {
        const result = input.kind === 'propose' ? raft.propose(input.data) : raft.proposeConfChange(input.change);
        if (!result.ok) return this.failProposal(input.done, result.error);
        const atIndex = this.proposals.get(result.index) ?? [];
        atIndex.push({ term: result.term, done: input.done });
        this.proposals.set(result.index, atIndex);
        this.proposalCount++;
        return;
      }
      case 'read': {
        const id = this.nextReadId++;
        this.reads.set(id, input.done);
        return raft.readIndex(id);
      }
      case 'transfer':
        return input.done(raft.transferLeadership(input.target));
      case 'report-snapshot':
        if (!input.ok) this.metricsValue.snapshotsFailed++;
        return raft.reportSnapshot(input.to, input.ok);
      case 'persisted':
        return raft.persisted(input.index, input.term);
      case 'leader-unreachable':
        return raft.leaderUnreachable(input.id);
    }
  }

  /** Steps 1-4 of one Ready: asynchronously on a leader whose term and vote stay (`persistAsync`), else in order. */
  private runReady(ready: Ready): void {
    this.phase = 'in-ready';
    this.noteSoftState(ready);
    if (ready.persistAsync) return this.runAsyncReady(ready);
    // Its write must follow every queued one, and what it applies may need them durable.
    this.writer.whenIdle(() => {
      if (this.phase === 'in-ready') this.runSyncReady(ready);
    });
  }

  /**
   * A leader's Ready (Raft dissertation §10.2.1): send, start the write of its
   * entries (queued behind the one in flight), apply the committed entries —
   * durable already, the core hands out no others — and advance at once. The
   * write's completion comes back as a `persisted` input; only then does the
   * core count the leader's own copy towards commitment.
   */
  private runAsyncReady(ready: Ready): void {
    this.sendMessages(ready);
    // A hard state that moves only the commit index rides along with entries, or waits for the next ones (see runSyncReady).
    if (ready.entries.length > 0) this.writer.append(ready.entries, ready.hardState);
    this.applySlice(ready.committedEntries, (error) => {
      if (this.phase !== 'in-ready') return;
      if (error !== null) return this.halt({ kind: 'failed', error });
      this.finishReady(ready);
    });
  }

  /**
   * Steps 1-4 of one Ready in order, with one overlap that keeps the promise:
   * committed entries that were durable before this Ready (every one below
   * its first new entry; no write is in flight) are applied while it persists.
   */
  private runSyncReady(ready: Ready): void {
    // A hard state that moves only the commit index need not be saved (etcd's MustSync): the commit
    // index is an optimisation, learned again from the leader after a restart. Skipping it spares an
    // fsync per heartbeat and per commit on every member; the next save carries the newest commit.
    const hard = ready.hardState;
    const termOrVote = hard !== null && (hard.term !== this.savedTermVote.term || hard.vote !== this.savedTermVote.vote);
    const hasWrites = ready.snapshot !== null || ready.entries.length > 0 || termOrVote;
    const firstNew = ready.entries.length > 0 ? ready.entries[0]!.index : Number.POSITIVE_INFINITY;
    let early = 0;
    if (ready.snapshot === null) while (early < ready.committedEntries.length && ready.committedEntries[early]!.index < firstNew) early++;
    let waiting = 2;
    const joined = (error: Error | null): void => {
      if (this.phase !== 'in-ready') return; // stopped meanwhile
      if (error !== null) return this.halt({ kind: 'failed', error });
      if (--waiting === 0) this.afterSave(ready, early);
    };
    if (hasWrites) {
      if (hard !== null) this.savedTermVote = { term: hard.term, vote: hard.vote };
      this.writer.save({ snapshot: ready.snapshot, entries: ready.entries, hardState: ready.hardState }, joined);
    } else {
      joined(null);
    }
    this.applySlice(ready.committedEntries.slice(0, early), joined);
  }

  private sendMessages(ready: Ready): void {
    for (const message of ready.messages) {
      if (message.type === 'snapshot') this.sendSnapshot(message);
      else this.options.transport.send(message.to, { channel: RAFT_CHANNEL, group: this.group, body: message });
    }
  }

  /** 2. Durable: send. 3. Install the snapshot, then apply the committed entries from `applied` on. */
  private afterSave(ready: Ready, applied: number): void {
    this.sendMessages(ready);
    const rest = ready.committedEntries.slice(applied);
    const applyRest = (): void =>
      this.applySlice(rest, (error) => {
        if (this.phase !== 'in-ready') return;
        if (error !== null) return this.halt({ kind: 'failed', error });
        this.finishReady(ready);
      });
    if (ready.snapshot === null) return applyRest();
    const snapshot = ready.snapshot;
    this.options.stateMachine.installSnapshot(snapshot, (installError) => {
      if (this.phase !== 'in-ready') return;
      if (installError !== null) return this.halt({ kind: 'failed', error: installError });
      // Proposals the snapshot covers may or may not be in it: this node cannot tell any more.
      for (const index of [...this.proposals.keys()]) {
        if (index <= snapshot.index) this.resolveProposal(index, -1, undefined, new RaftError('IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN', `a snapshot at ${snapshot.index} replaced the log under this proposal`));
      }
      applyRest();
    });
  }

  /** Applies `entries` (possibly none) and answers their proposers; `done(error)` after. */
  private applySlice(entries: readonly Entry[], done: (error: Error | null) => void): void {
    if (entries.length === 0) return done(null);
    this.options.stateMachine.apply(entries, (error, results) => {
      if (this.phase !== 'in-ready') return;
      if (error !== null) return done(error);
      assert(results !== undefined && results.length === entries.length, 'the state machine returned one result per entry', results?.length, entries.length);
      for (let i = 0; i < entries.length; i++) this.resolveProposal(entries[i]!.index, entries[i]!.term, results[i]);
      done(null);
    });
  }

  /** Reads, then 4. advance; the loop goes on. */
  private finishReady(ready: Ready): void {
    const applied = ready.committedEntries.length > 0 ? ready.committedEntries[ready.committedEntries.length - 1]!.index : ready.snapshot !== null ? ready.snapshot.index : this.raft.appliedIndex;
    for (const state of ready.readStates) {
      const done = this.reads.get(state.requestId);
      if (done === undefined) continue;
      this.reads.delete(state.requestId);
      if (!state.ok) done(state.error);
      else this.readsWaitingApply.push({ index: state.index, done });
    }
    const waiting = this.readsWaitingApply;
    this.readsWaitingApply = [];
    for (const read of waiting) {
      if (read.index <= applied) read.done(null);
      else this.readsWaitingApply.push(read);
    }
    if (this.readyConsumesStaged) {
      this.readyConsumesStaged = false;
      this.snapshotReceiving = false;
    }
    this.raft.advance(ready);
    this.phase = 'idle';
    this.pump();
  }

  // ---------------------------------------------------------------- helpers

  private parseFrom(from: NodeId, body: unknown): Message {
    const message = parseMessage(body);
    if (message.from !== from || message.to !== this.id) {
      throw new RaftError('IMPULSE_ERR_RAFT_MESSAGE_INVALID', `message from ${message.from} to ${message.to} arrived from ${from} at ${this.id}`);
    }
    return message;
  }

  /** Fails `done` at once when stopped or when `held` reached `max`; true when it did. */
  private refuseRequest(done: (error: RaftError) => void, held: number, max: number, what: string): boolean {
    let error: RaftError | null = null;
    if (this.phase === 'stopped') error = stoppedError();
    else if (held + this.inboxRequests >= max) error = new RaftError('IMPULSE_ERR_RAFT_OVERLOADED', `${max} ${what} are pending on this node`, this.raft.leaderId);
    if (error === null) return false;
    this.countFailure(error);
    done(error);
    return true;
  }

  /**
   * Settles the proposals pending at `index`: the one of the applied entry's
   * term succeeded with `result`; the others were superseded (or all fail
   * with `error` when given).
   */
  private resolveProposal(index: number, appliedTerm: number, result: R | undefined, error?: RaftError): void {
    const pending = this.proposals.get(index);
    if (pending === undefined) return;
    this.proposals.delete(index);
    this.proposalCount -= pending.length;
    for (const proposal of pending) {
      if (error === undefined && proposal.term === appliedTerm) proposal.done(null, result);
      else this.failProposal(proposal.done, error ?? new RaftError('IMPULSE_ERR_RAFT_PROPOSAL_SUPERSEDED', `another entry was committed at index ${index}`, this.raft.leaderId));
    }
  }

  private failProposal(done: ProposeDone<R>, error: RaftError): void {
    this.countFailure(error);
    done(error);
  }

  private countFailure(error: RaftError): void {
    const failed = this.metricsValue.proposalsFailed;
    failed[error.code] = (failed[error.code] ?? 0) + 1;
  }

  private noteSoftState(ready: Ready): void {
    const soft = ready.softState;
    if (soft.leaderId !== this.lastLeader) {
      this.metricsValue.leaderChanges++;
      if (soft.leaderId === this.id) this.metricsValue.elections++;
      this.lastLeader = soft.leaderId;
    }
  }

  /** The core asked for a snapshot to `to`: send the state machine's current image, and report the outcome. */
  private sendSnapshot(message: Extract<Message, { type: 'snapshot' }>): void {
    const to = message.to;
    if (this.snapshotsSending.has(to)) return; // the core waits for the report of the one in flight
    this.snapshotsSending.add(to);
    const report = (ok: boolean): void => {
      this.snapshotsSending.delete(to);
      if (this.phase !== 'stopped') this.enqueue({ kind: 'report-snapshot', to, ok });
    };
    this.options.stateMachine.snapshot((error, image) => {
      if (error !== null || image === undefined || this.phase === 'stopped') return report(false);
      assert(image.meta.index >= message.snapshot.index, 'the state machine image is older than the log boundary', image.meta.index, message.snapshot.index);
      this.metricsValue.snapshotsSent++;
      const header: GroupMessage = { channel: RAFT_CHANNEL, group: this.group, body: { message: { ...message, snapshot: image.meta } } };
      this.options.transport.sendSnapshot(to, header, image.payload, (sendError) => report(sendError === null));
    });
  }

  /** Compacts the log up to the durable applied index, less the catch-up tail, once far enough past the last boundary. */
  private maybeCompact(): void {
    if (!this.writer.idle) return; // the log store takes one write at a time; the write's completion pumps again
    const durable = Math.min(this.options.stateMachine.durableAppliedIndex(), this.raft.appliedIndex);
    const target = durable - this.limits.snapshotCatchUpEntries;
    if (target - this.raft.snapshotIndex < this.limits.compactThresholdEntries) return;
    const meta = this.raft.compact(target);
    this.phase = 'compacting';
    this.options.logStore.compact(meta, (error) => {
      if (this.phase !== 'compacting') return;
      if (error !== null) return this.halt({ kind: 'failed', error });
      this.metricsValue.compactions++;
      this.phase = 'idle';
      this.pump();
    });
  }

  /** Stops for good: every pending request fails with IMPULSE_ERR_RAFT_STOPPED; `onStop` once. */
  private halt(reason: StopReason): void {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    const error = stoppedError(reason.kind === 'removed' ? 'this node was removed from the cluster' : undefined);
    const proposals = [...this.proposals.values()].flat().map((pending) => pending.done);
    const reads = [...this.reads.values(), ...this.readsWaitingApply.map((read) => read.done)];
    const queued = this.inbox;
    this.proposals.clear();
    this.proposalCount = 0;
    this.reads.clear();
    this.readsWaitingApply = [];
    this.inbox = [];
    for (const done of proposals) this.failProposal(done, error);
    for (const done of reads) done(error);
    for (const input of queued) {
      if (input.kind === 'propose' || input.kind === 'conf-change') this.failProposal(input.done, error);
      else if (input.kind === 'read' || input.kind === 'transfer') input.done(error);
    }
    this.options.onStop?.(reason);
  }
}

function stoppedError(why = 'the Raft group stopped on this node'): RaftError {
  return new RaftError('IMPULSE_ERR_RAFT_STOPPED', why);
}

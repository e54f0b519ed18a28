/**
 * One Raft group on a node: its durable log (`<data-dir>/raft/<group>/`), its
 * key-value state machine (`<data-dir>/kv/<group>/<engine>/`), and the driver
 * that runs the core on them. The node runtime (node-host.ts) owns the
 * transport and the timer and feeds every group through the methods here.
 *
 * Every call into the driver goes through `guard`: the driver's callbacks must
 * not throw, but a broken invariant inside the core does throw (an
 * AssertionError, after the driver halted itself). Caught here, it stops THIS
 * group — which then reports `failed` with the reason and refuses requests —
 * and never the process.
 *
 * Quiescence: a leader whose group has been quiet (`RaftDriver.quiet`; a
 * member the host's liveness says is down need not match: `quietPast`) for
 * `quiesceAfterTicks` ticks stops ticking it and tells the followers
 * (`QuiesceNotice`, sent by the host); a follower that agrees (same leader,
 * term and last index, nothing pending) stops ticking it too. An idle group
 * then costs no timer work and sends no heartbeats. Any way into the driver
 * (a message, a proposal, a read, a membership operation: `guard`) wakes it;
 * the host wakes a follower whose leader's node went silent
 * (node-liveness.ts), so a dead leader is still replaced.
 *
 * States: `running`; `failed` (fail-stop: a log or state-machine write failed,
 * or an invariant broke: restart the node after fixing the cause); `removed`
 * (a committed configuration removed this member: it no longer takes part);
 * `closed`.
 */
import type { Logger } from 'pino';
import type { ApplyResult, MergeAbsorb } from '../kv/apply.js';
import type { KvLimits } from '../kv/command.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { RaftDriver, type StopReason } from '../raft/driver.js';
import type { RaftTransport } from '../raft/driver-seams.js';
import type { LogJournal } from '../raft/log-store/journal.js';
import { SegmentedLogStore } from '../raft/log-store/log-store.js';
import { DEFAULT_RAFT_TIMING, type RaftConfig } from '../raft/raft.js';
import type { LogUpdate, RaftLogStore } from '../raft/storage.js';
import type { ConfState, NodeId } from '../raft/types.js';
import { engineHomeFor } from '../service/open-local.js';
import type { EngineChoices } from '../storage/engine-names.js';
import type { Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';
import type { Vfs } from '../vfs/vfs.js';
import { joinPath } from '../vfs/vfs.js';
import type { RaftTimingConfig } from './config.js';
import type { ImagePayload } from './image-stream.js';
import { type Membership, MEMBERSHIP_META_NAME, encodeMembership, initialMembership } from './membership.js';
import { RaftKvMachine } from './raft-kv-machine.js';
import type { ShardBounds, ShardMap } from '../shard/shard-map.js';
import { nodeOfRaftId } from '../shard/replica-id.js';

export type GroupState = 'running' | 'failed' | 'removed' | 'closed';

/** One cluster metadata value of a group's bootstrap state. */
export interface BootstrapMeta {
  readonly name: string;
  readonly value: Uint8Array;
}

/**
 * A new group's first state made from another group's (shard-split.ts): the
 * state machine is seeded (`seed`) when it is new, and the log starts after
 * `index`/`term` with `confState`. Both steps are idempotent, so a crash
 * between or inside them is finished by the next open.
 */
export interface GroupSeed {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
  /** Seeds the new state machine (applied index 0) at `index`/`term`. */
  seed(kv: KvStateMachine): Promise<void>;
}

/**
 * The Raft id a message from node `from` claims as its sender, when that id
 * is one of `from`'s (replica-id.ts); else `from` itself, which the driver
 * then refuses as a mismatch. The driver also refuses a message addressed to
 * another Raft id than this replica's: one meant for this node's earlier
 * replica of the group never reaches the new one.
 */
function senderRaftId(from: NodeId, body: unknown): number {
  const claimed = (body as { from?: unknown } | null)?.from;
  return typeof claimed === 'number' && Number.isSafeInteger(claimed) && claimed > 0 && nodeOfRaftId(claimed) === from ? claimed : from;
}

/** The index and term at which the initial voters' identical bootstrap state stands. */
export const BOOTSTRAP_INDEX = 1;
const BOOTSTRAP_TERM = 1;

/**
 * A learner may be promoted once within this many entries of the leader's
 * commit index. Generous: under a few thousand writes a second a healthy
 * learner trails by hundreds of entries (one round trip), and the core's
 * default (64) would refuse every promotion under load.
 */
export const LEARNER_CATCH_UP_ENTRIES_MAX = 2000;

export interface RaftGroupOptions {
  readonly group: number;
  readonly nodeId: NodeId;
  /** This replica's Raft id in the group (src/shard/replica-id.ts; its node is `nodeId`). Default: the node id. */
  readonly raftId?: number;
  readonly dataDir: string;
  /** An engine name from the registry (durable engines only: a member's state must outlive its process as its log does). */
  readonly engine: string;
  /** Engine-specific options (recovery modes, the log), as for a single node (registry.ts). */
  readonly engineChoices?: EngineChoices;
  readonly limits: KvLimits;
  readonly timing: RaftTimingConfig;
  /** The initial voters when this member bootstraps a new cluster; undefined for a member that joins. */
  readonly bootstrapVoters: ReadonlyMap<NodeId, string> | undefined;
  /** Cluster metadata written into the bootstrap state beside the membership (identical on every initial voter; e.g. a shard's bounds). */
  readonly bootstrapMeta?: readonly BootstrapMeta[];
  /** Instead of `bootstrapVoters`: a group made from another's state (a split's right part), identical on every replica. */
  readonly bootstrapSeed?: GroupSeed;
  readonly transport: RaftTransport<ImagePayload>;
  /** The node's journal (src/raft/log-store/journal.ts): the log's saves share its one fsync. Default: the log fsyncs each save itself. */
  readonly journal?: LogJournal;
  readonly vfs: Vfs;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** Ticks a leader's group must stay quiet before it quiesces; 0 never quiesces. Default: 2 heartbeats + 1 (one heartbeat carried the commit index). */
  readonly quiesceAfterTicks?: number;
  /** What a shard merge's commit in this group takes in (RaftKvMachineOptions.mergeSource). */
  readonly mergeSource?: (rightId: number, bounds: ShardBounds, revisionTop: number) => Promise<Omit<MergeAbsorb, 'deletes'>>;
  /** Overrides of the core's configuration (tests). */
  readonly raftOverrides?: Partial<Omit<RaftConfig, 'id' | 'random'>>;
}

/** A leader's word that its group is quiet at `index` in `term`: followers at the same point stop ticking. */
export interface QuiesceNotice {
  readonly term: number;
  readonly index: number;
}

/** What the host and the service follow of a group. Called on the group's loop; must not throw. */
export interface GroupListener {
  /** The leader this node knows of changed (0: none), or the term did with it. */
  leaderChanged?(leader: NodeId, term: number): void;
  /** The state machine applied up to `index` (after every apply or snapshot install). */
  applied?(index: number): void;
  membershipChanged?(membership: Membership): void;
  /** The shard map this group keeps changed (the meta group only). */
  shardMapChanged?(map: ShardMap): void;
  /** A shard group's bounds changed: it applied a split, or installed a snapshot. */
  boundsChanged?(bounds: ShardBounds): void;
  /** The group stopped: failed, removed or closed. */
  stateChanged?(state: GroupState): void;
}

export class RaftGroup {
  readonly id: number;
  private stateValue: GroupState = 'running';
  private failureValue: Error | undefined;
  private driverValue!: RaftDriver<ApplyResult, ImagePayload>;
  private machineValue!: RaftKvMachine;
  private lastLeader = 0;
  private lastTerm = 0;
  private quiescedValue = false;
  private quiescedPastValue: readonly NodeId[] = [];
  private quietTicks = 0;
  private readonly listeners: GroupListener[] = [];
  private readonly logger: Logger;

  private constructor(
    private readonly options: RaftGroupOptions,
    readonly logStore: SegmentedLogStore,
    private readonly kvMachine: KvStateMachine,
  ) {
    this.id = options.group;
    this.logger = options.logger.child({ group: options.group });
  }

  /** Opens (or creates, bootstrapping the initial voters' state) the group's log and state machine, and starts its driver. */
  static async open(options: RaftGroupOptions): Promise<RaftGroup> {
    const { vfs, dataDir, group } = options;
    const bootstrapConf: ConfState = { voters: options.bootstrapVoters === undefined ? [] : [...options.bootstrapVoters.keys()].sort((a, b) => a - b), learners: [] };
    const home = engineHomeFor({ engine: options.engine, dataDir: joinPath(dataDir, 'kv', String(group), options.engine), sync: 'fsync', limits: options.limits, ...(options.engineChoices !== undefined ? { engineChoices: options.engineChoices } : {}) });
    const kv = await KvStateMachine.open({ home, limits: options.limits });
    let logStore: SegmentedLogStore | undefined;
    try {
      logStore = await SegmentedLogStore.open(vfs, joinPath(dataDir, 'raft', String(group)), { bootstrapConfState: bootstrapConf, clock: options.clock, logger: options.logger, ...(options.journal !== undefined ? { journal: options.journal } : {}) });
      if (options.bootstrapSeed !== undefined) await bootstrapSeeded(kv, logStore, options.bootstrapSeed);
      else if (options.bootstrapVoters !== undefined) await bootstrap(kv, logStore, options.bootstrapVoters, options.bootstrapMeta ?? []);
      const opened = new RaftGroup(options, logStore, kv);
      await opened.start();
      return opened;
    } catch (error) {
      await logStore?.close().catch(() => undefined);
      await kv.close().catch(() => undefined);
      throw error;
    }
  }

  private async start(): Promise<void> {
    const { options } = this;
    this.machineValue = await RaftKvMachine.open({
      machine: this.kvMachine,
      limits: options.limits,
      logger: this.logger,
      guard: (work) => this.guard(work),
      flushEntries: Math.max(1, Math.min(1000, Math.floor(options.timing.snapshotEntries / 4))),
      onApplied: (index) => {
        this.noticeLeader();
        for (const listener of this.listeners) listener.applied?.(index);
      },
      onMembership: (membership) => {
        for (const listener of this.listeners) listener.membershipChanged?.(membership);
      },
      onShardMap: (map) => {
        for (const listener of this.listeners) listener.shardMapChanged?.(map);
      },
      onBounds: (bounds) => {
        for (const listener of this.listeners) listener.boundsChanged?.(bounds);
      },
      onFlushFailed: (error) => this.fail(error),
      ...(options.mergeSource !== undefined ? { mergeSource: options.mergeSource } : {}),
    });
    const raft: RaftConfig = {
      ...DEFAULT_RAFT_TIMING,
      learnerCatchUpEntriesMax: LEARNER_CATCH_UP_ENTRIES_MAX,
      ...options.raftOverrides,
      id: options.raftId ?? options.nodeId,
      electionTimeoutTicks: options.timing.electionTicks,
      heartbeatIntervalTicks: options.timing.heartbeatTicks,
      random: options.random,
    };
    this.driverValue = await new Promise((resolve, reject) => {
      RaftDriver.start<ApplyResult, ImagePayload>(
        {
          group: this.id,
          raft,
          limits: { compactThresholdEntries: options.timing.snapshotEntries, snapshotCatchUpEntries: options.timing.snapshotCatchUpEntries },
          logStore: guardedLogStore(this.logStore, (work) => this.guard(work)),
          transport: options.transport,
          stateMachine: this.machineValue,
          clock: options.clock,
          appliedIndex: this.kvMachine.appliedIndex,
          removedNodes: this.machineValue.membership.removed.map((member) => member.id),
          onStop: (reason) => this.onStop(reason),
        },
        (error, driver) => (error === null ? resolve(driver!) : reject(error)),
      );
    });
    this.lastLeader = this.driverValue.node.leaderId;
    this.lastTerm = this.driverValue.node.currentTerm;
  }

  listen(listener: GroupListener): void {
    this.listeners.push(listener);
  }

  get state(): GroupState {
    return this.stateValue;
  }

  /** Why the group failed or was removed (for /health and the log). */
  get failure(): Error | undefined {
    return this.failureValue;
  }

  get driver(): RaftDriver<ApplyResult, ImagePayload> {
    return this.driverValue;
  }

  get machine(): RaftKvMachine {
    return this.machineValue;
  }

  get membership(): Membership {
    return this.machineValue.membership;
  }

  /** The NODE of the leader this node knows of (its Raft id's node: src/shard/replica-id.ts); 0 when none (or the group is not running). */
  get leader(): NodeId {
    return this.stateValue === 'running' ? nodeOfRaftId(this.driverValue.node.leaderId) : 0;
  }

  /** The leader's Raft id (0: none); `leader` is its node. */
  get leaderRaftId(): number {
    return this.stateValue === 'running' ? this.driverValue.node.leaderId : 0;
  }

  /** True when this replica leads the group. */
  get leads(): boolean {
    return this.stateValue === 'running' && this.driverValue.node.leaderId === this.driverValue.id;
  }

  /**
   * Runs `work` (a call into the driver, or a driver callback); a throw stops
   * this group and is logged, never rethrown. Returns false when it threw.
   */
  guard(work: () => void): boolean {
    this.wake();
    return this.guardTicking(work);
  }

  /** `guard` without waking: the tick's way in. */
  private guardTicking(work: () => void): boolean {
    try {
      work();
      return true;
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return false;
    }
  }

  /**
   * One tick of the host's timer (none while quiesced). Returns the notice to
   * send to the other members when this tick quiesced the group (a leader
   * quiet for `quiesceAfterTicks` ticks), else undefined.
   */
  tick(down: (node: NodeId) => boolean = () => false): QuiesceNotice | undefined {
    if (this.stateValue !== 'running' || this.quiescedValue) return undefined;
    this.guardTicking(() => this.driverValue.tick());
    this.noticeLeader();
    const after = this.options.quiesceAfterTicks ?? 2 * this.options.timing.heartbeatTicks + 1;
    const driver = this.driverValue;
    const quiet = this.stateValue === 'running' && driver.node.role === 'leader' && driver.quietPast((raftId) => down(nodeOfRaftId(raftId)));
    this.quietTicks = quiet ? this.quietTicks + 1 : 0;
    if (after <= 0 || this.quietTicks < after) return undefined;
    this.quiescedValue = true;
    this.quiescedPastValue = this.laggingNodes();
    return { term: driver.node.currentTerm, index: driver.node.lastIndex };
  }

  /** True while the group is quiesced (not ticked). */
  get quiesced(): boolean {
    return this.quiescedValue;
  }

  /**
   * The nodes this leader's group quiesced past (down, and behind its last
   * index: see `tick`); empty when it quiesced with every member matching,
   * or is not quiesced. The host wakes the group when one of them is heard
   * from again, so the returning member catches up.
   */
  get quiescedPast(): readonly NodeId[] {
    return this.quiescedPastValue;
  }

  /** The nodes whose replica's match is behind this leader's last index. */
  private laggingNodes(): NodeId[] {
    const status = this.driverValue.status();
    const last = this.driverValue.node.lastIndex;
    return Object.entries(status.progress).filter(([, view]) => view.match !== last).map(([raftId]) => nodeOfRaftId(Number(raftId)));
  }

  /** The leader `from` says the group is quiet: quiesce too when this node stands at the same point with nothing pending. */
  receiveQuiesce(from: NodeId, notice: QuiesceNotice): void {
    if (this.stateValue !== 'running' || this.quiescedValue) return;
    const node = this.driverValue.node;
    if (node.role !== 'follower' || nodeOfRaftId(node.leaderId) !== from || node.currentTerm !== notice.term || node.lastIndex !== notice.index || !this.driverValue.quiet) return;
    this.quiescedValue = true;
  }

  /** The host's hint that node `id`'s process is gone: when it leads this group, campaign soon (RaftDriver.leaderUnreachable). */
  leaderUnreachable(id: NodeId): void {
    if (this.stateValue !== 'running' || this.quiescedValue || this.driverValue.node.leaderId === 0 || nodeOfRaftId(this.driverValue.node.leaderId) !== id) return;
    const leader = this.driverValue.node.leaderId;
    this.guardTicking(() => this.driverValue.leaderUnreachable(leader));
  }

  /** Resumes ticking a quiesced group (a fresh election timer and check-quorum round). */
  wake(): void {
    if (!this.quiescedValue) return;
    this.quiescedValue = false;
    this.quiescedPastValue = [];
    this.quietTicks = 0;
    if (this.stateValue === 'running') this.guardTicking(() => this.driverValue.resumeTicking());
  }

  /** A Raft message from a peer; an invalid one is dropped (counted by the driver). */
  receive(from: NodeId, body: unknown): void {
    if (this.stateValue !== 'running') return;
    // A late acknowledgement of the leader's last round that leaves the group quiet must not
    // cost it a round of ticks; every other message wakes it — a vote or pre-vote above all:
    // a quiesced member ignores those (it heard from its leader lately), so only the leader's
    // heartbeats, once it ticks again, tell a restarted member who leads.
    const type = (body as { type?: unknown } | null)?.type;
    const lateAck = type === 'heartbeat-response' || type === 'append-response';
    this.guardTicking(() => {
      const refused = this.driverValue.receive(senderRaftId(from, body), body);
      if (refused !== null) this.logger.debug({ peer: from, err: refused }, 'raft message refused');
    });
    if (this.quiescedValue && !(lateAck && this.driverValue.quiet)) this.wake();
    this.noticeLeader();
  }

  /** A snapshot stream from a peer; resolves once it is staged, rejects when it is refused. */
  receiveSnapshot(from: NodeId, header: unknown, payload: ImagePayload): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.stateValue !== 'running') return reject(new Error(`the group is ${this.stateValue} on this node`));
      const called = this.guard(() => this.driverValue.receiveSnapshot(senderRaftId(from, (header as { message?: unknown } | null)?.message), header, payload, (error) => (error === null ? resolve() : reject(error))));
      if (!called) reject(new Error('the group stopped while taking the snapshot'));
    });
  }

  /** Stops the group: the driver first (pending requests fail), then the log and the state machine (made durable first). */
  async close(): Promise<void> {
    if (this.stateValue === 'running') this.setState('closed');
    this.driverValue?.stop();
    await this.kvMachine.flush().catch((error: unknown) => this.logger.warn({ err: error }, 'could not flush the applied state at close'));
    await this.kvMachine.close();
    await this.logStore.close();
  }

  private noticeLeader(): void {
    const leader = this.leader;
    const term = this.stateValue === 'running' ? this.driverValue.node.currentTerm : this.lastTerm;
    if (leader === this.lastLeader && term === this.lastTerm) return;
    if (leader !== this.lastLeader) this.logger.info({ leader: leader === 0 ? null : leader, previous: this.lastLeader === 0 ? null : this.lastLeader, term }, leader === 0 ? 'no leader' : 'leader changed');
    this.lastLeader = leader;
    this.lastTerm = term;
    for (const listener of this.listeners) listener.leaderChanged?.(leader, term);
  }

  /** Fail-stop: the group takes nothing more until the node restarts. */
  private fail(error: Error): void {
    if (this.stateValue === 'running') {
      this.failureValue = error;
      this.logger.error({ err: error }, 'raft group failed and stopped: this node refuses requests until it is restarted (after fixing the cause)');
      this.setState('failed');
    }
    if (this.driverValue !== undefined && !this.driverValue.stopped) this.driverValue.stop();
  }

  private onStop(reason: StopReason): void {
    if (reason.kind === 'failed') return this.fail(reason.error);
    if (reason.kind === 'removed' && this.stateValue === 'running') {
      this.logger.warn('this node was removed from the cluster: it no longer takes part; stop it and delete its data directory');
      this.setState('removed');
    }
  }

  private setState(state: GroupState): void {
    this.stateValue = state;
    for (const listener of this.listeners) listener.stateChanged?.(state);
    this.noticeLeader();
  }
}

/**
 * The log store as the driver sees it: the same store, but its completions
 * (`save`, `compact`), which run the driver's loop from the store's own
 * promise chain, go through `guard` like every other way into the driver.
 */
function guardedLogStore(store: SegmentedLogStore, guard: (work: () => void) => void): RaftLogStore {
  return {
    hardState: () => store.hardState(),
    snapshotMeta: () => store.snapshotMeta(),
    firstIndex: () => store.firstIndex(),
    lastIndex: () => store.lastIndex(),
    term: (index) => store.term(index),
    entries: (lo, hi, bytesMax) => store.entries(lo, hi, bytesMax),
    save: (update, done) => store.save(update, (error) => guard(() => done(error))),
    compact: (meta, done) => store.compact(meta, (error) => guard(() => done(error))),
    stats: () => store.stats(),
    close: () => store.close(),
  };
}

/**
 * The state every initial voter starts from, identical on all of them: the
 * state machine at index 1 (term 1) holding the initial membership, and the
 * log beginning after it, as if a snapshot at 1 had been installed. A new
 * leader's first entry goes to index 2; a member that joins later gets a
 * snapshot first, which carries the membership. Each step runs only if it has
 * not (a crash in between is finished at the next start).
 */
async function bootstrap(kv: KvStateMachine, log: SegmentedLogStore, voters: ReadonlyMap<NodeId, string>, meta: readonly BootstrapMeta[]): Promise<void> {
  const membership = initialMembership(voters);
  if (kv.appliedIndex === 0) {
    await kv.applyBatch([{ index: BOOTSTRAP_INDEX, term: BOOTSTRAP_TERM, type: 'meta', name: MEMBERSHIP_META_NAME, value: encodeMembership(membership), more: meta }], { sync: true });
  }
  await startLogAt(log, BOOTSTRAP_INDEX, BOOTSTRAP_TERM, membership.confState);
}

async function bootstrapSeeded(kv: KvStateMachine, log: SegmentedLogStore, seed: GroupSeed): Promise<void> {
  if (kv.appliedIndex === 0) await seed.seed(kv);
  // A group whose log exists has moved on from its seed; only a new log must start where the seed stands.
  if (log.snapshotMeta().index === 0 && log.lastIndex() === 0 && kv.appliedIndex !== seed.index) {
    throw new Error(`the seeded group stands at ${kv.appliedIndex}, its seed at ${seed.index}`);
  }
  await startLogAt(log, seed.index, seed.term, seed.confState);
}

/** A new log starts after `index`/`term` (a snapshot boundary), committed there; an existing log is left alone. */
async function startLogAt(log: SegmentedLogStore, index: number, term: number, confState: ConfState): Promise<void> {
  if (log.snapshotMeta().index !== 0 || log.lastIndex() !== 0) return;
  const update: LogUpdate = { snapshot: { index, term, confState }, entries: [], hardState: { term, vote: 0, commit: index } };
  await new Promise<void>((resolve, reject) => log.save(update, (error) => (error === null ? resolve() : reject(error))));
}

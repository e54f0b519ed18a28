/**
 * Opens and removes the Raft groups of one node at runtime, each with its
 * request machinery (raft-requests.ts), all on the node's one host:
 *
 *   const groups = new HostedGroups({ host, dataDir, engine, ... });
 *   const g7 = await groups.open(7, voters);     // <data-dir>/raft/7/, <data-dir>/kv/7/<engine>/
 *   await g7.requests.write(bytes, true);
 *   await groups.destroy(7);                     // closed, its files deleted
 *
 * A group opened with `voters` bootstraps their identical empty state at
 * index 1 on a first open (every replica must be opened with the same voters);
 * with `undefined` it waits for a snapshot from its leader (a member added to
 * an existing group). Reopening an existing group ignores `voters`: its state
 * comes from its files.
 *
 * Group ids must never be reused after `destroy`: a Vfs without `removeDir`
 * leaves empty directories behind.
 *
 * Raft ids: a group is opened under this node's Raft id in it (default the
 * node id; shard groups may give another, src/shard/replica-id.ts). The id
 * is recorded in `<data-dir>/raft/<g>/replica-id` before the group's log is
 * made, and `raftIdOnDisk` reads it back (a directory without the record is
 * of the node id: made before ids were recorded), so the files of a group
 * always say whose they are — a replayed older map naming this node's earlier
 * Raft id in a group never reopens its newer files under the old id.
 */
import type { Logger } from 'pino';
import type { MergeAbsorb } from '../kv/apply.js';
import type { KvLimits } from '../kv/command.js';
import { type ShardBounds, sameShardBounds } from '../shard/shard-map.js';
import type { RpcEndpoint } from '../transport/rpc.js';
import type { LogJournal } from '../raft/log-store/journal.js';
import type { RaftConfig } from '../raft/raft.js';
import type { NodeId } from '../raft/types.js';
import type { EngineChoices } from '../storage/engine-names.js';
import type { Clock } from '../util/clock.js';
import type { Random } from '../util/random.js';
import { corruption } from '../util/corruption.js';
import { type Vfs, isNotFound, joinPath } from '../vfs/vfs.js';
import type { RaftTimingConfig } from './config.js';
import type { NodeHost } from './node-host.js';
import { type BootstrapMeta, type GroupSeed, RaftGroup } from './raft-group.js';
import { RaftRequests } from './raft-requests.js';
import { serveShardReads } from './remote-shard.js';
import { serveShardConf } from './shard-conf.js';
import { type MergePrepared, mergeAbsorbOf, readMergePrepared } from './shard-merge.js';
import { readSplitRecords, splitGroupSeed } from './shard-split.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { engineHomeFor } from '../service/open-local.js';

export interface HostedGroupsOptions {
  readonly host: NodeHost;
  readonly dataDir: string;
  readonly engine: string;
  /** Engine-specific options (recovery modes, the log) for every group's engine (src/storage/engine-names.ts). */
  readonly engineChoices?: EngineChoices;
  readonly limits: KvLimits;
  readonly timing: RaftTimingConfig;
  readonly vfs: Vfs;
  /** The node's journal: every group's log saves share its one fsync (RaftGroupOptions.journal). Default: none. */
  readonly journal?: LogJournal;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly requestTimeoutMs: number;
  /** Requests that may wait at once, per group. */
  readonly waitingMax: number;
  readonly onCommitted?: (latencyMs: number) => void;
  readonly raftOverrides?: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  /** See RaftGroupOptions.quiesceAfterTicks. */
  readonly quiesceAfterTicks?: number;
}

export interface HostedGroup {
  readonly group: RaftGroup;
  readonly requests: RaftRequests;
}

export class HostedGroups {
  private readonly hosted = new Map<number, HostedGroup>();
  /** Groups being opened (`open`) or read (`mergePreparedOnDisk`) right now: one at a time each. */
  private readonly busy = new Set<number>();

  constructor(private readonly options: HostedGroupsOptions) {}

  get(id: number): HostedGroup | undefined {
    return this.hosted.get(id);
  }

  get size(): number {
    return this.hosted.size;
  }

  /**
   * Opens group `id` on this node (see the file comment for `voters`;
   * `bootstrapMeta` goes into the bootstrap state with them; `seed`, instead
   * of voters, makes a new group from another's state: a split) and hosts it.
   */
  async open(id: number, voters: ReadonlyMap<NodeId, string> | undefined, bootstrapMeta: readonly BootstrapMeta[] = [], seed?: GroupSeed, raftId: number = this.options.host.nodeId): Promise<HostedGroup> {
    const { options } = this;
    if (this.hosted.has(id) || options.host.group(id) !== undefined) throw new Error(`raft group ${id} is open on this node already`);
    if (this.busy.has(id)) throw new Error(`raft group ${id} is being opened or read on this node; try again`);
    this.busy.add(id);
    try {
      return await this.openNow(id, voters, bootstrapMeta, seed, raftId);
    } finally {
      this.busy.delete(id);
    }
  }

  private async openNow(id: number, voters: ReadonlyMap<NodeId, string> | undefined, bootstrapMeta: readonly BootstrapMeta[], seed: GroupSeed | undefined, raftId: number): Promise<HostedGroup> {
    const { options } = this;
    const onDisk = await this.raftIdOnDisk(id);
    if (onDisk !== undefined && onDisk !== raftId) throw new Error(`raft group ${id}'s files on this node are of Raft id ${onDisk}, not ${raftId}`);
    if (onDisk === undefined && raftId !== options.host.nodeId) await this.recordRaftId(id, raftId);
    const group = await RaftGroup.open({
      group: id,
      nodeId: options.host.nodeId,
      raftId,
      dataDir: options.dataDir,
      engine: options.engine,
      ...(options.engineChoices !== undefined ? { engineChoices: options.engineChoices } : {}),
      limits: options.limits,
      timing: options.timing,
      bootstrapVoters: voters,
      bootstrapMeta,
      ...(seed !== undefined ? { bootstrapSeed: seed } : {}),
      transport: options.host.raftTransport(id),
      ...(options.journal !== undefined ? { journal: options.journal } : {}),
      vfs: options.vfs,
      clock: options.clock,
      random: options.random.fork(),
      logger: options.logger,
      ...(options.raftOverrides !== undefined ? { raftOverrides: options.raftOverrides } : {}),
      ...(options.quiesceAfterTicks !== undefined ? { quiesceAfterTicks: options.quiesceAfterTicks } : {}),
      mergeSource: (rightId, bounds, revisionTop) => this.mergeAbsorb(id, rightId, bounds, revisionTop),
    });
    try {
      options.host.addGroup(group);
    } catch (error) {
      await group.close(); // the host closed while the group opened
      throw error;
    }
    const { tickMs, electionTicks, heartbeatTicks } = options.timing;
    const requests = new RaftRequests({
      group,
      rpc: options.host.rpc,
      groupRpc: options.host.groupRpc,
      clock: options.clock,
      logger: options.logger,
      requestTimeoutMs: options.requestTimeoutMs,
      // Two full (randomized, up to 2T) election timeouts: long enough for an election after a leader dies.
      leaderWaitMs: Math.min(options.requestTimeoutMs, 4 * electionTicks * tickMs),
      retryPauseMs: heartbeatTicks * tickMs,
      waitingMax: options.waitingMax,
      ...(options.onCommitted !== undefined ? { onCommitted: options.onCommitted } : {}),
    });
    const hosted = { group, requests };
    // Members that do not replicate a shard read it here (remote-shard.ts).
    serveShardReads(options.host.groupRpc, hosted, options.limits);
    // The replica mover on the meta group's leader asks the group's leader for membership steps (shard-conf.ts).
    serveShardConf(options.host.groupRpc, hosted, { clock: options.clock, stepTimeoutMs: options.requestTimeoutMs, pollMs: tickMs });
    this.hosted.set(id, hosted);
    return hosted;
  }

  /** The node's RPC endpoint (peer requests between members). */
  get rpc(): RpcEndpoint {
    return this.options.host.rpc;
  }

  /**
   * What group `leftId`'s replica here takes in when it applies the commit of
   * group `rightId`'s merge (shard-merge.ts): from this node's replica of
   * `rightId` once it applied its prepare-merge into `leftId` with `bounds`
   * and `revisionTop` (that very prepare: a replica behind may still hold the
   * record of an earlier attempt that was rolled back since).
   * Opens that replica from its files when it is not hosted (a restart: the
   * map may no longer name it), or makes it from the split record `leftId`
   * holds when it has no files here (`madeFromSplit`), and waits for it,
   * polling every tick; it never gives up (the commit is in the log: there
   * is no other way forward), but says so every MERGE_WAIT_LOG_POLLS polls.
   */
  private async mergeAbsorb(leftId: number, rightId: number, bounds: ShardBounds, revisionTop: number): Promise<Omit<MergeAbsorb, 'deletes'>> {
    const { clock, logger, timing } = this.options;
    for (let polls = 1; ; polls++) {
      const right = (await this.hostedOrOpened(rightId)) ?? (await this.madeFromSplit(leftId, rightId));
      const prepared = right?.group.state === 'running' ? await readMergePrepared(right.group.machine.machine) : undefined;
      if (right !== undefined && prepared !== undefined && prepared.leftId === leftId && sameShardBounds(prepared.bounds, bounds) && prepared.revisionTop === revisionTop) return mergeAbsorbOf(right.group.machine.machine, prepared);
      if (polls % MERGE_WAIT_LOG_POLLS === 0) logger.warn({ shard: leftId, right: rightId, hosted: right !== undefined }, 'a shard merge commit waits for this member\'s replica of the merged-away shard to apply its prepare-merge');
      await new Promise<void>((resolve) => clock.setTimer(timing.tickMs, resolve));
    }
  }

  /** Group `id` as hosted here, else opened from its files here (undefined: no files, or it could not open now). */
  private async hostedOrOpened(id: number): Promise<HostedGroup | undefined> {
    const hosted = this.hosted.get(id);
    if (hosted !== undefined) return hosted;
    try {
      const raftId = await this.raftIdOnDisk(id);
      return raftId === undefined ? undefined : await this.open(id, undefined, [], undefined, raftId);
    } catch (error) {
      this.options.logger.debug({ err: error, group: id }, 'could not open a merged-away group\'s replica yet');
      return undefined;
    }
  }

  /**
   * Group `rightId` made here from the split record of `leftId`'s replica
   * here (undefined without one, or when it could not be made now). A member
   * down through the split of `leftId` and the merge of the split's new shard
   * back into it never opens that shard from the map, which no longer names
   * it: its replica of `leftId` meets the merge's commit with no replica of
   * the merged-away shard here. Made at the split's index with `leftId`'s
   * membership then (this member's Raft id in `leftId`), it catches up from
   * the merged-away group, which lives on the other members until every
   * replica of `leftId` took it in (shard-merges.ts `destroyMerged`). The
   * record is still there: the commit precedes every split GC step of that
   * split in `leftId`'s log (docs/sharding.md "Splits"), and the apply batch
   * is cut before a commit (RaftKvMachine), so the split has applied.
   */
  private async madeFromSplit(leftId: number, rightId: number): Promise<HostedGroup | undefined> {
    const left = this.hosted.get(leftId);
    if (left === undefined || left.group.state !== 'running') return undefined;
    try {
      const record = (await readSplitRecords(left.group.machine.machine)).get(rightId);
      if (record === undefined) return undefined;
      const made = await this.open(rightId, undefined, [], splitGroupSeed(left, record), left.group.driver.id);
      this.options.logger.info({ shard: rightId, into: leftId, index: record.index }, 'made this member\'s replica of a merged-away shard from its split record, for the merge commit');
      return made;
    } catch (error) {
      this.options.logger.debug({ err: error, group: rightId }, 'could not make a merged-away group\'s replica from its split record yet');
      return undefined;
    }
  }

  /** The Raft id group `id`'s files on this node are of (see the file comment); undefined when it has no files here. */
  async raftIdOnDisk(id: number): Promise<number | undefined> {
    const { vfs, dataDir, host } = this.options;
    const dir = joinPath(dataDir, 'raft', String(id));
    if (!(await vfs.exists(dir))) return undefined;
    if (!(await vfs.exists(joinPath(dir, REPLICA_ID_FILE)))) return host.nodeId;
    const text = (await vfs.readFile(joinPath(dir, REPLICA_ID_FILE))).toString('utf8');
    const raftId = Number(text);
    if (!/^[1-9][0-9]*$/.test(text) || !Number.isSafeInteger(raftId)) throw corruption('hosted-groups', joinPath(dir, REPLICA_ID_FILE), 'the recorded Raft id is not a positive integer');
    return raftId;
  }

  /** The ids of the groups with files on this node (`raft/<id>/` or `kv/<id>/`: a crash inside `destroy` may leave either), ascending. */
  async idsOnDisk(): Promise<number[]> {
    const { vfs, dataDir } = this.options;
    const ids = new Set<number>();
    for (const part of ['raft', 'kv']) {
      let names: string[];
      try {
        names = await vfs.list(joinPath(dataDir, part));
      } catch (error) {
        if (isNotFound(error)) continue;
        throw error;
      }
      for (const name of names) if (/^[1-9][0-9]*$/.test(name) && Number.isSafeInteger(Number(name))) ids.add(Number(name));
    }
    return [...ids].sort((a, b) => a - b);
  }

  /**
   * The `merge-prepared` record (shard-merge.ts) of group `id`'s state
   * machine here, read without hosting the group: its engine is opened,
   * read and closed, and the group is not opened meanwhile (`open` refuses;
   * a merge commit waiting for it polls again). Undefined: no record, or no
   * state machine here. Refuses a hosted group (its state is the group's).
   */
  async mergePreparedOnDisk(id: number): Promise<MergePrepared | undefined> {
    const { vfs, dataDir, engine, limits, engineChoices } = this.options;
    if (this.hosted.has(id) || this.busy.has(id)) throw new Error(`raft group ${id} is open, or being opened, on this node`);
    this.busy.add(id);
    try {
      const engineDir = joinPath(dataDir, 'kv', String(id), engine);
      if (!(await vfs.exists(engineDir))) return undefined;
      const home = engineHomeFor({ engine, dataDir: engineDir, sync: 'fsync', limits, ...(engineChoices !== undefined ? { engineChoices } : {}) });
      const machine = await KvStateMachine.open({ home, limits });
      try {
        return await readMergePrepared(machine);
      } finally {
        await machine.close();
      }
    } finally {
      this.busy.delete(id);
    }
  }

  /** Records `raftId` as group `id`'s on this node, durably, before the group has any file (a crash leaves the record or nothing). */
  private async recordRaftId(id: number, raftId: number): Promise<void> {
    const { vfs, dataDir } = this.options;
    const dir = joinPath(dataDir, 'raft', String(id));
    await vfs.mkdir(dir);
    const temp = joinPath(dir, `${REPLICA_ID_FILE}.tmp`);
    const file = await vfs.open(temp, { create: true, truncate: true });
    try {
      await file.write(0, Buffer.from(String(raftId), 'utf8'));
      await file.sync();
    } finally {
      await file.close();
    }
    await vfs.rename(temp, joinPath(dir, REPLICA_ID_FILE));
    await vfs.syncDir(dir);
    await vfs.syncDir(joinPath(dataDir, 'raft'));
  }

  /** Stops hosting group `id` (requests pending on it fail as the group closes); its files stay. */
  async close(id: number): Promise<void> {
    this.hosted.delete(id);
    await this.options.host.removeGroup(id);
  }

  /** Stops hosting group `id` and deletes its log and state machine files (refused while the group is being opened or read). */
  async destroy(id: number): Promise<void> {
    if (this.busy.has(id)) throw new Error(`raft group ${id} is being opened or read on this node; try again`);
    this.busy.add(id);
    try {
      await this.close(id);
      const { vfs, dataDir } = this.options;
      await removeTree(vfs, joinPath(dataDir, 'raft', String(id)));
      await removeTree(vfs, joinPath(dataDir, 'kv', String(id)));
      await vfs.syncDir(joinPath(dataDir, 'raft'));
      await vfs.syncDir(joinPath(dataDir, 'kv'));
    } finally {
      this.busy.delete(id);
    }
  }
}

/** Polls (ticks) between two warnings while a merge commit waits for its merged-away group's replica. */
const MERGE_WAIT_LOG_POLLS = 200;

/** The file of a group's directory that records this node's Raft id in the group (absent: the node id). */
const REPLICA_ID_FILE = 'replica-id';

/** Deletes `dir` and everything under it (files first; directories where the Vfs can). */
async function removeTree(vfs: Vfs, dir: string): Promise<void> {
  let names: string[];
  try {
    names = await vfs.list(dir);
  } catch (error) {
    if (isNotFound(error)) return;
    throw error;
  }
  for (const name of names) {
    const path = joinPath(dir, name);
    try {
      await vfs.unlink(path);
    } catch {
      await removeTree(vfs, path); // a directory (unlink refuses it)
    }
  }
  await vfs.removeDir?.(dir);
}

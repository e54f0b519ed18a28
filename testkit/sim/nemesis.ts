/**
 * The nemesis: every fault of a simulated run, and only faults (the checks
 * live in invariants.ts). Every 30-300 ms of the chaos phase (10-120 ms in a
 * leadership storm) it picks one kind:
 *
 *   partitions   one node isolated, the leader isolated, majority/minority, a
 *                ring of overlapping majorities, a bridge {A,B,C},{C,D,E}, and
 *                one-way cuts (a node that hears but is not heard, or the
 *                reverse); each heals after a while;
 *   crashes      one node, the leader, a majority, all (some restarting at the
 *                same instant); reactive ones: right after granting a vote, new
 *                leaders dying young (some right after their first fsync,
 *                before sending), and crashes that hit a save before its fsync;
 *   slowness     pauses past the election timeout, clock-rate skew, a lossy
 *                duplicating network, slow snapshot streams;
 *   cluster ops  membership changes (add learner, promote, remove — removed
 *                nodes stay up until they learn it), leadership transfers, and
 *                bursts of concurrent requests that hit the overload bounds.
 *
 * After the chaos phase, `heal()` ends every fault for the quiet phase.
 */
import type { ConfChange, NodeId } from '../../src/raft/types.js';
import type { SimClients } from './clients.js';
import { TICK_MS, type SimCluster, type SimNode } from './cluster.js';
import type { FaultKind, SimWorld } from './world.js';

const STORM_FAULTS: readonly FaultKind[] = ['crash-new-leader', 'partition-leader', 'crash-leader', 'crash-after-vote', 'crash-during-save'];
/** Node ids never go past this (membership churn adds nodes 4/6.. up to it). */
const NODE_ID_MAX = 9;

export interface NemesisOptions {
  readonly faults: readonly FaultKind[];
  /** Dense schedule of the faults that depose leaders (Figure 8 conditions). */
  readonly storm: boolean;
  readonly chaosMs: number;
  /** Membership churn keeps the number of voters within these bounds. */
  readonly votersMin: number;
  readonly votersMax: number;
  readonly electionTimeoutTicks: number;
}

export class Nemesis {
  private chaosOver = false;
  private crashAfterVotesLeft = 0;
  private crashNewLeadersLeft = 0;
  private crashDuringSaveLeft = 0;
  private nextNodeId: NodeId;

  constructor(
    private readonly world: SimWorld,
    private readonly cluster: SimCluster,
    private readonly clients: SimClients,
    private readonly options: NemesisOptions,
  ) {
    this.nextNodeId = Math.max(...cluster.nodes.keys()) + 1;
    cluster.hooks = {
      newLeader: (node) => this.onNewLeader(node),
      voteGranted: (node) => this.onVoteGranted(node),
      saveStarted: (node) => this.onSaveStarted(node),
    };
  }

  start(): void {
    this.world.at(this.world.random.between(100, 400), () => this.tick());
  }

  /** Ends every fault: the network heals, crashed nodes restart, paused ones resume, clocks run true. */
  heal(): void {
    this.chaosOver = true;
    const cluster = this.cluster;
    cluster.network.heal();
    cluster.network.lossy = false;
    cluster.network.slowSnapshots = false;
    for (const node of cluster.nodes.values()) {
      node.clockRate = 1;
      if (node.status === 'down') cluster.boot(node);
      if (node.pausedUntilMs > this.world.nowMs) cluster.resume(node);
    }
    this.world.trace('heal all');
  }

  private tick(): void {
    const world = this.world;
    if (world.nowMs >= this.options.chaosMs) return;
    const stormKinds = this.options.faults.filter((kind) => STORM_FAULTS.includes(kind));
    const kind = this.options.storm && stormKinds.length > 0 && world.random.chance(0.7) ? world.pick(stormKinds) : world.pick(this.options.faults);
    if (this.inject(kind)) world.stats.faults[kind]++;
    world.at(this.options.storm ? world.random.between(10, 120) : world.random.between(30, 300), () => this.tick());
  }

  /**
   * Applies one fault; true when injected now, false when it does not apply
   * right now (no leader to transfer from, ...) or was only armed (reactive
   * faults count themselves when they fire).
   */
  private inject(kind: FaultKind): boolean {
    const world = this.world;
    const cluster = this.cluster;
    switch (kind) {
      case 'partition-isolate':
      case 'partition-leader':
      case 'partition-split':
      case 'partition-ring':
      case 'partition-bridge':
      case 'partition-one-way':
        return this.partition(kind);
      case 'crash-after-vote':
        // The next few voters die right after granting (their votes must have been durable).
        if (this.crashAfterVotesLeft === 0) this.crashAfterVotesLeft = world.random.between(1, 4);
        return false;
      case 'crash-new-leader':
        // Leader churn: the next few leaders die young, leaving short divergent log suffixes (Figure 8 material).
        if (this.crashNewLeadersLeft === 0) this.crashNewLeadersLeft = world.random.between(2, 6);
        return false;
      case 'crash-during-save':
        return this.crashDuringSave();
      case 'crash-leader':
      case 'crash-one':
      case 'crash-majority':
      case 'crash-all':
        return this.crash(kind);
      case 'pause': {
        const up = cluster.liveNodes();
        if (up.length === 0) return false;
        // Prefer the leader: pausing it is what tests stale leadership.
        const leader = cluster.currentLeader();
        const node = leader !== undefined && world.random.chance(0.7) ? leader : world.pick(up);
        const durationMs = this.options.electionTimeoutTicks * TICK_MS * (1.5 + world.random.next() * 4);
        world.trace(`fault pause n${node.id} for ${durationMs.toFixed(1)} ms`);
        cluster.pause(node, durationMs);
        return true;
      }
      case 'clock-skew': {
        const up = cluster.liveNodes();
        if (up.length === 0) return false;
        const node = world.pick(up);
        const previous = node.clockRate;
        node.clockRate = world.random.chance(0.5) ? 0.3 + world.random.next() * 0.4 : 1.5 + world.random.next() * 1.5;
        world.trace(`fault clock-skew n${node.id} rate ${node.clockRate.toFixed(3)}`);
        world.at(world.random.between(300, 1500), () => (node.clockRate = previous));
        return true;
      }
      case 'lossy-network':
        return this.toggle('lossy', 'lossy-network');
      case 'slow-snapshots':
        return this.toggle('slowSnapshots', 'slow-snapshots');
      case 'membership-change':
        return this.changeMembership();
      case 'leader-transfer': {
        const leader = cluster.currentLeader();
        if (leader === undefined) return false;
        const others = leader.driver!.node.confState.voters.filter((id) => id !== leader.id);
        if (others.length === 0) return false;
        cluster.transferLeadership(leader, world.pick(others));
        return true;
      }
      case 'request-burst': {
        const leader = cluster.currentLeader();
        if (leader === undefined) return false;
        const count = world.random.between(20, 80);
        world.trace(`fault request-burst of ${count} at n${leader.id}`);
        this.clients.burst(leader.id, count);
        return true;
      }
    }
  }

  /** Crashes the leader, one node, a majority or all (restarting after a random outage). */
  private crash(kind: 'crash-leader' | 'crash-one' | 'crash-majority' | 'crash-all'): boolean {
    const world = this.world;
    const cluster = this.cluster;
    if (kind === 'crash-leader') {
      const leader = cluster.currentLeader();
      if (leader === undefined) return false;
      cluster.crash(leader);
      return true;
    }
    const up = cluster.liveNodes();
    if (up.length === 0) return false;
    const count = kind === 'crash-one' ? 1 : kind === 'crash-all' ? up.length : Math.floor(up.length / 2) + 1;
    // A power cut brings several nodes back at the same instant half the time: their election
    // timers then start together, which makes split votes (several candidates per term) likely.
    const together = count > 1 && world.random.chance(0.5) ? 1 + world.random.next() * 200 : undefined;
    for (const node of world.shuffle(up).slice(0, count)) cluster.crash(node, together);
    return true;
  }

  private toggle(flag: 'lossy' | 'slowSnapshots', kind: FaultKind): boolean {
    const network = this.cluster.network;
    if (network[flag]) return false;
    network[flag] = true;
    this.world.trace(`fault ${kind}`);
    this.world.at(this.world.random.between(200, 1000), () => (network[flag] = false));
    return true;
  }

  private partition(kind: FaultKind): boolean {
    const world = this.world;
    const network = this.cluster.network;
    if (network.partitioned) return false;
    const order = world.shuffle(this.cluster.members());
    const leader = this.cluster.currentLeader();
    if (kind === 'partition-leader' || (kind === 'partition-one-way' && leader !== undefined && world.random.chance(0.5))) {
      if (leader === undefined) return false;
      order.splice(order.indexOf(leader.id), 1);
      order.unshift(leader.id); // the cut-off one, and on the minority side of splits
    }
    if (kind === 'partition-isolate' || kind === 'partition-leader') network.partition([order.slice(0, 1), order.slice(1)]);
    else if (kind === 'partition-split') network.partition([order.slice(0, Math.floor(order.length / 2)), order.slice(Math.floor(order.length / 2))]);
    else if (kind === 'partition-ring') {
      // Every node sees its two ring neighbours: each sees a majority (of 5), no two see the same one.
      network.partition(order.map((id) => [id]), order.map((id, i): [NodeId, NodeId] => [id, order[(i + 1) % order.length]!]));
    } else if (kind === 'partition-bridge') {
      // {A,B,C} and {C,D,E}: C alone talks to both sides.
      const middle = Math.floor(order.length / 2);
      network.partition([order.slice(0, middle + 1), order.slice(middle)]);
    } else {
      // One way: the first node hears the others but is not heard, or the reverse.
      const deaf = world.random.chance(0.5);
      if (deaf) network.cutOneWay(order.slice(1), order.slice(0, 1));
      else network.cutOneWay(order.slice(0, 1), order.slice(1));
      world.trace(`fault partition-one-way n${order[0]} ${deaf ? 'hears no one' : 'is heard by no one'}`);
    }
    world.trace(`fault ${kind} order=${order.join(',')}`);
    let healMs = world.random.between(200, 1500);
    if (kind === 'partition-leader' && world.random.chance(0.5)) {
      // Composite: the cut-off leader keeps taking writes while the leaders elected behind it
      // die young; after the heal, several divergent uncommitted suffixes compete (Figure 8).
      this.crashNewLeadersLeft = Math.max(this.crashNewLeadersLeft, world.random.between(2, 6));
      healMs = world.random.between(100, 500);
      world.trace('fault partition-leader with leader churn');
    }
    world.at(healMs, () => {
      network.heal();
      world.trace('heal partition');
    });
    return true;
  }

  /** Crashes a node whose last save is not yet durable, if one exists now; otherwise arms a crash at the next save. */
  private crashDuringSave(): boolean {
    const unsynced = this.cluster.liveNodes().filter((node) => node.store.unsyncedSaves > 0);
    if (unsynced.length === 0) {
      if (this.crashDuringSaveLeft === 0) this.crashDuringSaveLeft = this.world.random.between(1, 3);
      return false;
    }
    const leader = unsynced.find((node) => node.driver!.node.role === 'leader');
    const node = leader ?? this.world.pick(unsynced);
    this.world.trace(`fault crash-during-save n${node.id}`);
    this.cluster.crash(node);
    return true;
  }

  /** One step of membership churn: add a learner, promote it once caught up, or remove a voter (keeping votersMin..votersMax). */
  private changeMembership(): boolean {
    const world = this.world;
    const leader = this.cluster.currentLeader();
    if (leader === undefined) return false;
    const conf = leader.driver!.node.confState;
    const { votersMin, votersMax } = this.options;
    const context = (id: NodeId): Uint8Array => new TextEncoder().encode(`127.0.0.1:${7000 + id}`);
    let change: ConfChange;
    if (conf.learners.length > 0) {
      change = { type: 'add-voter', nodeId: conf.learners[0]!, context: context(conf.learners[0]!) };
    } else if (conf.voters.length < votersMax && (conf.voters.length <= votersMin || world.random.chance(0.5)) && this.nextNodeId <= NODE_ID_MAX) {
      const id = this.nextNodeId++;
      this.cluster.createNode(id, []);
      change = { type: 'add-learner', nodeId: id, context: context(id) };
    } else if (conf.voters.length > votersMin) {
      const id = world.pick(conf.voters.filter((voter) => voter !== leader.id));
      change = { type: 'remove-node', nodeId: id, context: new Uint8Array(0) };
    } else {
      return false;
    }
    this.cluster.proposeConfChange(leader, change);
    return true;
  }

  // ---------------------------------------------------------------- reactive faults

  private onNewLeader(node: SimNode): void {
    if (this.crashNewLeadersLeft === 0 || this.chaosOver) return;
    // The new leader dies while it is still bringing followers up to date.
    this.crashNewLeadersLeft--;
    const world = this.world;
    const incarnation = node.incarnation;
    // Sometimes after its first append is durable but before it is sent (the leader's
    // entries then exist on its disk alone), sometimes mid-catch-up of its followers.
    const roll = world.random.int(3);
    if (roll === 0) {
      node.crashAfterNextSync = true;
      return;
    }
    const delayMs = roll === 1 ? world.random.next() * 5 : 5 + world.random.next() * 35;
    world.at(delayMs, () => {
      if (node.status !== 'up' || node.incarnation !== incarnation) return;
      world.trace(`fault crash-new-leader n${node.id}`);
      world.stats.faults['crash-new-leader']++;
      this.cluster.crash(node);
    });
  }

  private onVoteGranted(node: SimNode): void {
    if (this.crashAfterVotesLeft === 0 || this.chaosOver) return;
    // The vote is on its way; the voter dies right after (its vote must have been durable).
    this.crashAfterVotesLeft--;
    this.crashNow(node, 'crash-after-vote', '');
  }

  private onSaveStarted(node: SimNode): void {
    if (this.crashDuringSaveLeft === 0 || this.chaosOver) return;
    // The save is not durable yet: the crash comes before its fsync completes.
    this.crashDuringSaveLeft--;
    this.crashNow(node, 'crash-during-save', ' (save in flight)');
  }

  /** A reactive crash, as the next event (before any fsync scheduled now can complete). */
  private crashNow(node: SimNode, kind: FaultKind, note: string): void {
    const incarnation = node.incarnation;
    this.world.at(0, () => {
      if (node.incarnation !== incarnation) return;
      this.world.trace(`fault ${kind} n${node.id}${note}`);
      this.world.stats.faults[kind]++;
      this.cluster.crash(node);
    });
  }
}

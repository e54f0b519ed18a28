/**
 * The nemesis: turns one scheduled fault into actions on the real cluster,
 * and returns how to heal it. Abstract targets (the leader, a random
 * minority, ...) are resolved here, against the cluster as it is at that
 * moment; what was resolved goes into the fault log.
 *
 * Heal semantics per fault (the run's final heal does all of them):
 *   kill       start the killed members again on their data
 *   pause      SIGCONT
 *   partition  every link healthy
 *   link       every link healthy
 *   clock      normal rate, no strobe (jumps stay: the clock is monotonic); links
 *              healthy after slow-isolated
 *   disk       a healthy disk; a member that fail-stopped (as documented for a
 *              failed fsync) is restarted on its data
 *   membership every link healthy; a removed member is replaced by a new one
 *              (a spare slot: learner first, then promoted)
 */
import { ImpulseClient } from '../../src/client/client.js';
import type { ChaosCluster } from './cluster.js';
import { type Fault, type ScheduledFault, describeFault, partitionCuts, resolveTarget } from './schedule.js';

export interface FaultRecord {
  readonly id: number;
  readonly kind: Fault['kind'];
  readonly description: string;
  /** Seconds since the workload started. */
  readonly startS: number;
  endS: number | undefined;
  /** The member ids it hit. */
  readonly targets: number[];
  /** What happened on the way (refusals, restarts), one line each. */
  readonly notes: string[];
}

export type Healer = () => Promise<void>;

const PROMOTE_WAIT_MS = 20_000;

/** Applies `scheduled` now; returns its record and its healer. */
export async function applyFault(scheduled: ScheduledFault, cluster: ChaosCluster, nowS: () => number): Promise<{ record: FaultRecord; heal: Healer }> {
  const fault = scheduled.fault;
  const leader = await cluster.faultLeader(scheduled.id);
  const leaderId = leader.id;
  const leaderSlot = cluster.slotOf(leaderId);
  const ids = (slots: number[]): number[] => slots.map((slot) => cluster.slots[slot]!);
  const record: FaultRecord = { id: scheduled.id, kind: fault.kind, description: describeFault(fault), startS: nowS(), endS: undefined, targets: [], notes: [] };
  const note = (text: string): void => void record.notes.push(text);
  if (leader.note !== undefined) note(`"the leader" is ${leader.note}${leaderId !== undefined ? `: ${leaderId}` : ' (none now)'}`);
  switch (fault.kind) {
    case 'kill': {
      const targets = ids(resolveTarget(fault.target, leaderSlot));
      record.targets.push(...targets);
      await Promise.all(targets.map((id) => cluster.processes.kill(id)));
      return { record, heal: () => restart(cluster, targets, note) };
    }
    case 'pause': {
      const targets = ids(resolveTarget(fault.target, leaderSlot));
      record.targets.push(...targets);
      for (const id of targets) cluster.processes.signal(id, 'SIGSTOP');
      return { record, heal: async () => targets.forEach((id) => cluster.processes.signal(id, 'SIGCONT')) };
    }
    case 'partition': {
      const cuts = partitionCuts(fault.shape, fault.order, leaderSlot).map(([from, to]) => [cluster.slots[from]!, cluster.slots[to]!] as const);
      record.targets.push(...new Set(cuts.map(([from]) => from)));
      note(`cut ${cuts.map(([from, to]) => `${from}→${to}`).join(' ')}`);
      cluster.network.cut(cuts);
      return { record, heal: async () => cluster.network.heal() };
    }
    case 'link': {
      const faults = fault.effect === 'delay' ? { delayMs: fault.delayMs, jitterMs: fault.jitterMs } : fault.effect === 'loss' ? { lossRate: fault.rate } : fault.effect === 'duplicate' ? { duplicateRate: fault.rate } : { reorderRate: fault.rate };
      record.targets.push(...cluster.slots);
      cluster.network.degrade(faults);
      return { record, heal: async () => cluster.network.heal() };
    }
    case 'clock': {
      const targets = ids(resolveTarget(fault.target, leaderSlot));
      record.targets.push(...targets);
      const command = fault.effect === 'jump' ? { jumpMs: fault.amountMs } : fault.effect === 'strobe' ? { strobe: { periodMs: 100, jumpMs: fault.amountMs } } : { rate: fault.rate };
      for (const id of targets) cluster.processes.control(id, { clock: command });
      if (fault.effect === 'slow-isolated') isolate(cluster, targets[0]!, record, false);
      return {
        record,
        heal: async () => {
          if (fault.effect === 'slow-isolated') cluster.network.heal();
          targets.forEach((id) => cluster.processes.control(id, { clock: 'reset' }));
        },
      };
    }
    case 'disk': {
      const targets = ids(resolveTarget(fault.target, leaderSlot));
      record.targets.push(...targets);
      for (const id of targets) cluster.processes.control(id, { disk: fault.spec });
      return { record, heal: () => healDisks(cluster, targets, note) };
    }
    case 'membership':
      return fault.effect === 'transfer-leader' ? transferUnderPartition(fault.order, cluster, leaderId, record) : replaceUnderPartition(fault.order, cluster, leaderId, record);
  }
}

/** Starts the members that are not running (on their data). */
export async function restart(cluster: ChaosCluster, ids: readonly number[], note: (text: string) => void): Promise<void> {
  for (const id of ids) {
    if (cluster.processes.isRunning(id) || !cluster.slots.includes(id)) continue;
    try {
      await cluster.startMember(id);
    } catch (error) {
      note(`member ${id} did not restart: ${(error as Error).message.split('\n')[0]}`);
    }
  }
}

/**
 * A healthy disk on `ids`; a member that fail-stopped is restarted (kill -9, then start on its data):
 * a Raft member's group reports `failed`, a leaderless member's engine `read-only` (it refuses
 * writes until reopened, as documented for a failed fsync).
 */
export async function healDisks(cluster: ChaosCluster, ids: readonly number[], note: (text: string) => void): Promise<void> {
  for (const id of ids) {
    cluster.processes.control(id, { disk: '' });
    const health = await cluster.health(id);
    if (health === 'failed' || health === 'read-only') {
      note(`member ${id} had fail-stopped (its disk failed: ${health}, as documented); restarted on its data`);
      await cluster.processes.kill(id);
      await restart(cluster, [id], note);
    }
  }
}

/** Isolates one follower, then asks the leader to hand leadership to another member (maybe the isolated one). */
async function transferUnderPartition(order: readonly number[], cluster: ChaosCluster, leaderId: number | undefined, record: FaultRecord): Promise<{ record: FaultRecord; heal: Healer }> {
  const members = order.map((slot) => cluster.slots[slot]!);
  const isolated = members.find((id) => id !== leaderId) ?? members[0]!;
  isolate(cluster, isolated, record);
  const to = members.find((id) => id !== leaderId && id !== members[1]) ?? isolated;
  record.targets.push(to);
  if (leaderId === undefined) record.notes.push('no leader: no transfer');
  else {
    await cluster.admin(leaderId).transferLeader(to).then(
      () => record.notes.push(`leadership ${leaderId} → ${to} asked`),
      (error: unknown) => record.notes.push(`transfer ${leaderId} → ${to} refused: ${(error as Error).message}`),
    );
  }
  return { record, heal: async () => cluster.network.heal() };
}

/** Isolates one follower and removes it from the cluster; the heal adds a new member in its slot. */
async function replaceUnderPartition(order: readonly number[], cluster: ChaosCluster, leaderId: number | undefined, record: FaultRecord): Promise<{ record: FaultRecord; heal: Healer }> {
  const members = order.map((slot) => cluster.slots[slot]!);
  const victim = members.find((id) => id !== leaderId) ?? members[0]!;
  isolate(cluster, victim, record);
  const noHeal = { record, heal: async () => cluster.network.heal() };
  if (leaderId === undefined) return record.notes.push('no leader: nobody removed'), noHeal;
  const removed = await cluster.admin(leaderId).removeMember(victim).then(
    () => true,
    (error: unknown) => (record.notes.push(`removing ${victim} refused: ${(error as Error).message}`), false),
  );
  if (!removed) return noHeal;
  record.notes.push(`member ${victim} removed`);
  await cluster.processes.kill(victim);
  await cluster.processes.wipe(victim);
  return { record, heal: () => addReplacement(cluster, victim, record) };
}

function isolate(cluster: ChaosCluster, id: number, record: FaultRecord, target = true): void {
  const cuts = cluster.slots.filter((other) => other !== id).flatMap((other) => [[id, other] as const, [other, id] as const]);
  if (target) record.targets.push(id);
  record.notes.push(`isolated ${id}`);
  cluster.network.cut(cuts);
}

/** Heals the network, adds a spare as a learner in `oldId`'s slot, starts it with --join, and promotes it once caught up. */
async function addReplacement(cluster: ChaosCluster, oldId: number, record: FaultRecord): Promise<void> {
  cluster.network.heal();
  const newId = cluster.takeSpare();
  if (newId === undefined) return void record.notes.push('no spare slot left: the cluster stays one member short');
  const spec = cluster.spec(newId);
  const deadline = Date.now() + PROMOTE_WAIT_MS;
  const anyMember = (): ImpulseClient => cluster.admin(cluster.slots.find((id) => id !== oldId && cluster.processes.isRunning(id)) ?? cluster.slots[0]!);
  for (;;) {
    try {
      await anyMember().addMember({ id: newId, peerUrl: `${spec.host}:${spec.peerPort}`, clientUrl: cluster.url(newId) });
      break;
    } catch (error) {
      if (Date.now() > deadline) return void record.notes.push(`adding ${newId} failed: ${(error as Error).message}`);
      await sleep(200);
    }
  }
  cluster.replaceSlot(oldId, newId);
  await cluster.startMember(newId, true);
  for (;;) {
    try {
      await anyMember().promoteMember(newId);
      record.notes.push(`member ${newId} replaced ${oldId} (learner, then voter)`);
      return;
    } catch (error) {
      // An attempt whose answer was lost (a client timeout on a loaded machine) may have promoted it: then it is no learner any more.
      if (await isVoter(anyMember(), newId)) return void record.notes.push(`member ${newId} replaced ${oldId} (learner, then voter; the promotion's answer was lost)`);
      if (Date.now() > deadline) return void record.notes.push(`promoting ${newId} failed: ${(error as Error).message}`);
      await sleep(250);
    }
  }
}

/** Whether the cluster (as `client`'s member sees it) has `id` as a voter; false when it cannot tell. */
async function isVoter(client: ImpulseClient, id: number): Promise<boolean> {
  const view = await client.cluster().catch(() => undefined);
  const role = view?.members.find((member) => member.id === id)?.role;
  return role === 'leader' || role === 'follower' || role === 'candidate';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

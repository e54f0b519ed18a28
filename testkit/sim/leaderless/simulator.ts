/**
 * The leaderless mode of the simulator: `runLeaderlessSimulation({ seed })`
 * runs a cluster of the product's leaderless nodes (cluster.ts) on virtual
 * time, with clients and faults drawn from the seed, and checks the history.
 * A run is a pure function of its seed (and options): the same seed gives the
 * same trace hash.
 *
 * Shape per seed: 3, 4 or 5 nodes; N = 3; (R, W) one of (2, 2), (1, 3),
 * (3, 1); a strict or a sloppy quorum; siblings (dotted version vectors), or
 * in 20% of seeds last-writer-wins.
 * Four clients put unique values to four keys (70%, with the context of their
 * last read of the key 70% of the time, else blind) and read (30%), each
 * through a random running node, one request at a time.
 *
 * Phases: `chaosMs` of faults every 40-250 ms (partitions, heal, crashes with
 * a restart 100-800 ms later, lossy periods), then everything heals and
 * restarts; `quietMs` for hinted handoff; then the seed's repair path brings
 * the replicas together: READ REPAIR (reads of every key with R = N until a
 * pass repairs nothing) or ANTI-ENTROPY (every node exchanges with every
 * other until an exchange finds nothing; then the final reads).
 * On the anti-entropy path background exchanges also run every 500 ms
 * throughout; on the read-repair path anti-entropy is off, so read repair
 * (and hinted handoff) alone must converge.
 *
 * Checks (testkit/check/causal-history.ts):
 *   - siblings, strict quorums (R + W > N): every read that started after a
 *     write was acknowledged shows it or a write that supersedes it;
 *   - siblings: the final contents lose no acknowledged write (lww: at most
 *     one value per key — lww drops concurrent writes by design);
 *   - always: each key's owners hold identical sets, and no hint is left.
 */
import type { LeaderlessMutations } from '../../../src/leaderless/coordinator.js';
import { type NodeId, type SiblingSet, type VersionVector, contextOf, liveValues, onlyTombstones, sameDots } from '../../../src/leaderless/dvv.js';
import type { Ring } from '../../../src/leaderless/ring.js';
import { DEFAULT_LEADERLESS_CONFIG, type LeaderlessConfig } from '../../../src/leaderless/config.js';
import { type CausalViolation, type ReadRecord, type WriteRecord, checkNoAcknowledgedWriteLost, checkReadsSeeAcknowledgedWrites } from '../../check/causal-history.js';
import { SimWorld } from '../world.js';
import { LeaderlessSimCluster } from './cluster.js';

export interface LeaderlessSimOptions {
  readonly seed: number;
  readonly chaosMs?: number;
  readonly quietMs?: number;
  readonly mutations?: LeaderlessMutations;
  /** Forces the quorum kind (else drawn from the seed). */
  readonly sloppy?: boolean;
  /** After the chaos, with the clients still running: a node joins, then a member leaves (`membershipPhase`). Off by default: existing seeds keep their traces. */
  readonly membership?: boolean;
  readonly trace?: (line: string) => void;
}

export interface LeaderlessSimStats {
  writesOk: number;
  writesFailed: number;
  readsOk: number;
  readsFailed: number;
  faults: number;
  crashes: number;
  messagesSent: number;
  messagesDropped: number;
  hintsDelivered: number;
  readRepairs: number;
  /** Keys pulled or pushed by anti-entropy exchanges (background and final). */
  antiEntropyKeys: number;
  /** Membership changes that completed, and that were refused or aborted (membership seeds). */
  membershipChanges: number;
  membershipChangesFailed: number;
}

export interface LeaderlessSimResult {
  readonly seed: number;
  readonly setup: string;
  readonly violations: readonly CausalViolation[];
  readonly stats: LeaderlessSimStats;
  readonly traceHash: string;
}

const KEYS = ['a', 'b', 'c', 'd'];
const CLIENTS = 4;

interface History {
  readonly writes: WriteRecord[];
  readonly reads: ReadRecord[];
  nextWrite: number;
}

export async function runLeaderlessSimulation(options: LeaderlessSimOptions): Promise<LeaderlessSimResult> {
  const world = new SimWorld(options.seed, options.trace);
  const nodeCount = world.pick([3, 4, 5]);
  const [readQuorum, writeQuorum] = world.pick([[2, 2], [1, 3], [3, 1]] as const);
  const sloppy = options.sloppy ?? world.random.chance(0.5);
  const repairPath = world.random.chance(0.5) ? 'read-repair' : 'anti-entropy';
  // lww loses concurrent acknowledged writes by design: those seeds check convergence (and one value per key) only.
  const conflicts = world.random.chance(0.2) ? 'lww' : 'siblings';
  const config: LeaderlessConfig = {
    ...DEFAULT_LEADERLESS_CONFIG,
    replicas: 3,
    readQuorum,
    writeQuorum,
    sloppy,
    requestTimeoutMs: 300,
    heartbeatMs: 50,
    suspectAfterMs: 150,
    downAfterMs: 400,
    handoffIntervalMs: 100,
    // Background anti-entropy only on the anti-entropy path: on the read-repair path read repair alone must converge (so a broken read repair shows).
    antiEntropyIntervalMs: repairPath === 'anti-entropy' ? 500 : 0,
    conflicts,
  };
  const ids = Array.from({ length: nodeCount }, (_, index) => index + 1);
  const setup = `${nodeCount} nodes, N=3 R=${readQuorum} W=${writeQuorum}, ${sloppy ? 'sloppy' : 'strict'} quorum, ${repairPath}${conflicts === 'lww' ? ', lww' : ''}`;
  world.trace(`setup ${setup}`);
  const cluster = new LeaderlessSimCluster(world, ids, config, options.mutations);
  const history: History = { writes: [], reads: [], nextWrite: 1 };
  const stats: LeaderlessSimStats = { writesOk: 0, writesFailed: 0, readsOk: 0, readsFailed: 0, faults: 0, crashes: 0, messagesSent: 0, messagesDropped: 0, hintsDelivered: 0, readRepairs: 0, antiEntropyKeys: 0, membershipChanges: 0, membershipChangesFailed: 0 };
  await cluster.open();
  const chaosMs = options.chaosMs ?? 3000;
  let clientsRunning = true;
  for (let client = 0; client < CLIENTS; client++) runClient(world, cluster, history, stats, () => clientsRunning);
  scheduleFaults(world, cluster, stats, chaosMs);
  await runFor(world, chaosMs);
  cluster.heal();
  for (const id of ids) await cluster.start(id);
  const membershipViolations = options.membership === true ? await membershipPhase(world, cluster, stats) : [];
  clientsRunning = false;
  await runFor(world, options.quietMs ?? 1500);
  let convergence: CausalViolation[];
  let finalValues: Map<string, number[]>;
  if (repairPath === 'read-repair') {
    finalValues = await repairByReading(world, cluster);
    convergence = await checkConvergence(cluster);
  } else {
    await repairByAntiEntropy(world, cluster);
    convergence = await checkConvergence(cluster);
    finalValues = await readEverything(world, cluster);
  }
  const siblings = conflicts === 'siblings';
  const violations = [
    ...(!siblings || sloppy || readQuorum + writeQuorum <= 3 ? [] : checkReadsSeeAcknowledgedWrites(history.writes, history.reads)),
    ...(siblings ? checkNoAcknowledgedWriteLost(history.writes, finalValues) : checkOneValue(finalValues)),
    ...convergence,
    ...membershipViolations,
  ];
  for (const id of cluster.ids) {
    stats.hintsDelivered += cluster.node(id)!.handoff.hintsDelivered;
    stats.readRepairs += cluster.node(id)!.coordinator.figures.readRepairs;
    const { keysPulled, keysPushed } = cluster.node(id)!.antiEntropy.figures;
    stats.antiEntropyKeys += keysPulled + keysPushed;
  }
  stats.messagesSent = cluster.messagesSent;
  stats.messagesDropped = cluster.messagesDropped;
  await cluster.close();
  return { seed: options.seed, setup, violations, stats, traceHash: world.traceHash() };
}

/**
 * With the cluster healed and the clients still writing and reading: COLD_KEYS
 * keys are written once (the clients' four keys are rewritten so often that
 * the pending step alone would bring them to a new owner; these show whether
 * the transfer step moved what was stored before the change), then node
 * `max + 1` joins (claimed by a random member), then, if that completed, a
 * random member other than the claimant leaves; each change is followed by
 * 300 ms of traffic. A change may fail (a step that still found no answer
 * after its retries aborts it); the history's checks hold either way and span
 * the change. After each change that completed, `checkGainersHold`.
 */
async function membershipPhase(world: SimWorld, cluster: LeaderlessSimCluster, stats: LeaderlessSimStats): Promise<CausalViolation[]> {
  const violations: CausalViolation[] = [];
  const change = async (claimant: NodeId, members: readonly NodeId[]): Promise<boolean> => {
    world.trace(`membership change by ${claimant} to [${members.join(',')}]`);
    const before = await storedEverywhere(cluster);
    const oldRing = cluster.node(claimant)!.ring;
    const outcome = await runWhile(world, cluster.node(claimant)!.changeMembership(members.map((id) => ({ id, peerUrl: '' }))));
    world.trace(`membership change ${outcome.ok ? 'done' : `failed ${String(outcome.error).slice(0, 80)}`}`);
    if (outcome.ok) {
      stats.membershipChanges++;
      violations.push(...(await checkGainersHold(cluster, claimant, oldRing, before)));
    } else stats.membershipChangesFailed++;
    await runFor(world, 300);
    return outcome.ok;
  };
  for (let index = 0; index < COLD_KEYS; index++) {
    const coordinator = cluster.node(world.pick(cluster.ids))!;
    await runWhile(world, coordinator.coordinator.put(Buffer.from(`cold-${index}`), Buffer.from('0'), [], cluster.config.writeQuorum));
  }
  const current = (): NodeId[] => cluster.node(cluster.ids[0]!)!.membership.view.members.map((member) => member.id);
  const joiner = Math.max(...cluster.ids) + 1;
  await cluster.addNode(joiner);
  const before = current();
  if (!(await change(world.pick(before), [...before, joiner]))) return violations;
  const members = current();
  const claimant = world.pick(members);
  const leaver = world.pick(members.filter((id) => id !== claimant));
  await change(claimant, members.filter((id) => id !== leaver));
  return violations;
}

/** Keys written once before the membership changes (see membershipPhase). */
const COLD_KEYS = 24;

/** Every key stored on any running node, its sets merged across them. */
async function storedEverywhere(cluster: LeaderlessSimCluster): Promise<Map<string, SiblingSet>> {
  const merged = new Map<string, SiblingSet>();
  for (const id of cluster.ids) {
    const node = cluster.node(id);
    if (node === undefined) continue;
    // A simulation stores a few dozen keys: one page of the engine's largest range holds them all.
    for (const { key, set } of await node.replica.scan({ limit: 10_000 })) {
      const name = key.toString('latin1');
      const held = merged.get(name);
      merged.set(name, held === undefined ? set : node.replica.reconcile(held, set));
    }
  }
  return merged;
}

/**
 * What the transfer step promises (docs/leaderless.md, Membership): once a
 * change completed, every member that GAINED a key holds everything some
 * member stored of it when the change began (or something newer that
 * supersedes it). Keys whose sets were only tombstones are skipped (a
 * collection may remove them meanwhile).
 */
async function checkGainersHold(cluster: LeaderlessSimCluster, claimant: NodeId, oldRing: Ring, before: ReadonlyMap<string, SiblingSet>): Promise<CausalViolation[]> {
  const violations: CausalViolation[] = [];
  const newRing = cluster.node(claimant)!.ring;
  const replicas = cluster.config.replicas;
  for (const [name, stored] of before) {
    if (onlyTombstones(stored)) continue;
    const key = Buffer.from(name, 'latin1');
    const oldOwners = oldRing.preferenceList(key, replicas);
    for (const gainer of newRing.preferenceList(key, replicas).filter((id) => !oldOwners.includes(id))) {
      const node = cluster.node(gainer);
      if (node === undefined) continue;
      const held = await node.replica.read(key);
      if (!sameDots(node.replica.reconcile(held, stored), held)) {
        violations.push({ kind: 'handoff-missed', message: `node ${gainer} gained ${name} in the change to [${newRing.nodes.join(',')}] but lacks what was stored before it began` });
      }
    }
  }
  return violations;
}

/** Runs events for `durationMs` of virtual time, draining the promise jobs each event starts before the next. */
async function runFor(world: SimWorld, durationMs: number): Promise<void> {
  let done = false;
  world.at(durationMs, () => (done = true));
  while (!done) {
    const event = world.queue.pop();
    if (event === undefined) break;
    world.nowMs = event.timeMs;
    event.run();
    // Microtasks (promise continuations, the memory engine's work) all run before this macrotask.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

function runClient(world: SimWorld, cluster: LeaderlessSimCluster, history: History, stats: LeaderlessSimStats, running: () => boolean): void {
  const lastRead = new Map<string, { context: VersionVector; values: number[] }>();
  const next = (): void => {
    if (!running()) return;
    world.at(world.random.between(5, 30), () => {
      const up = cluster.upNodes();
      if (up.length === 0) return next();
      const via = world.pick(up);
      const key = world.pick(KEYS);
      const work = world.random.chance(0.7) ? write(world, cluster, history, stats, via, key, lastRead) : read(world, cluster, history, stats, via, key, lastRead);
      void work.then(next);
    });
  };
  next();
}

async function write(world: SimWorld, cluster: LeaderlessSimCluster, history: History, stats: LeaderlessSimStats, via: NodeId, key: string, lastRead: Map<string, { context: VersionVector; values: number[] }>): Promise<void> {
  const id = history.nextWrite++;
  const seen = world.random.chance(0.7) ? lastRead.get(key) : undefined;
  const past = new Set<number>();
  for (const value of seen?.values ?? []) {
    past.add(value);
    for (const earlier of history.writes[value - 1]!.past) past.add(earlier);
  }
  const record: { -readonly [K in keyof WriteRecord]: WriteRecord[K] } = { id, key, past, startMs: world.nowMs, ackMs: null };
  history.writes.push(record);
  world.trace(`w${id} ${key} via ${via} ctx [${[...past].join(',')}]`);
  try {
    await cluster.node(via)!.coordinator.put(Buffer.from(key), Buffer.from(String(id)), seen?.context ?? [], cluster.config.writeQuorum);
    record.ackMs = world.nowMs;
    stats.writesOk++;
    world.trace(`w${id} ok`);
  } catch (error) {
    stats.writesFailed++;
    world.trace(`w${id} failed ${(error as Error).message.slice(0, 60)}`);
  }
}

async function read(world: SimWorld, cluster: LeaderlessSimCluster, history: History, stats: LeaderlessSimStats, via: NodeId, key: string, lastRead: Map<string, { context: VersionVector; values: number[] }>): Promise<void> {
  const startMs = world.nowMs;
  try {
    const set = await cluster.node(via)!.coordinator.get(Buffer.from(key), cluster.config.readQuorum);
    const values = idsOf(set);
    history.reads.push({ key, startMs, endMs: world.nowMs, values });
    lastRead.set(key, { context: contextOf(set), values });
    stats.readsOk++;
    world.trace(`read ${key} via ${via} = [${values.join(',')}]`);
  } catch {
    stats.readsFailed++;
  }
}

function idsOf(set: SiblingSet): number[] {
  return liveValues(set).map((value) => Number(value.toString()));
}

function scheduleFaults(world: SimWorld, cluster: LeaderlessSimCluster, stats: LeaderlessSimStats, chaosMs: number): void {
  const endMs = world.nowMs + chaosMs;
  const next = (): void => {
    world.at(world.random.between(40, 250), () => {
      if (world.nowMs >= endMs) return;
      stats.faults++;
      const roll = world.random.int(5);
      if (roll === 0) {
        const shuffled = world.shuffle(cluster.ids);
        const cut = world.random.between(1, shuffled.length - 1);
        cluster.partition([shuffled.slice(0, cut), shuffled.slice(cut)]);
      } else if (roll === 1) {
        cluster.heal();
      } else if (roll === 2 || roll === 3) {
        const up = cluster.upNodes();
        if (up.length > 1) {
          const victim = world.pick(up);
          cluster.crash(victim);
          stats.crashes++;
          world.at(world.random.between(100, 800), () => void cluster.start(victim));
        }
      } else {
        cluster.lossy = !cluster.lossy;
        world.trace(`lossy ${cluster.lossy}`);
      }
      next();
    });
  };
  next();
}

/**
 * Reads every key with R = N through the first node, 300 ms apart, until a
 * pass repairs nothing (at most 5 passes: read repair is best effort, a
 * repair message can be lost); returns the live write ids per key.
 */
async function repairByReading(world: SimWorld, cluster: LeaderlessSimCluster): Promise<Map<string, number[]>> {
  const coordinator = cluster.node(cluster.ids[0]!)!.coordinator;
  let result = new Map<string, number[]>();
  for (let pass = 0; pass < 5; pass++) {
    const before = coordinator.figures.readRepairs;
    result = await readEverything(world, cluster);
    await runFor(world, 300);
    if (coordinator.figures.readRepairs === before) break;
  }
  return result;
}

/** Every node exchanges with every other (each `repairAll` repeats until an exchange finds nothing), at most 5 passes, until a pass pulls and pushes nothing. */
async function repairByAntiEntropy(world: SimWorld, cluster: LeaderlessSimCluster): Promise<void> {
  for (let pass = 0; pass < 5; pass++) {
    let moved = 0;
    for (const id of cluster.ids) {
      const outcome = await runWhile(world, cluster.node(id)!.antiEntropy.repairAll());
      if (!outcome.ok) throw outcome.error;
      for (const result of outcome.value) if ('keysPulled' in result) moved += result.keysPulled + result.keysPushed;
    }
    world.trace(`anti-entropy pass ${pass}: ${moved} keys moved`);
    if (moved === 0) return;
  }
}

/** Reads every key with R = N through the first node, retrying until it answers. */
async function readEverything(world: SimWorld, cluster: LeaderlessSimCluster): Promise<Map<string, number[]>> {
  const result = new Map<string, number[]>();
  for (const key of KEYS) {
    for (let attempt = 0; ; attempt++) {
      const outcome = await runWhile(world, cluster.node(cluster.ids[0]!)!.coordinator.get(Buffer.from(key), cluster.config.replicas));
      if (outcome.ok) {
        result.set(key, idsOf(outcome.value));
        break;
      }
      if (attempt === 20) throw new Error(`the final read of ${key} failed 20 times in a healed cluster: ${String(outcome.error)}`);
    }
  }
  return result;
}

/** Runs events until `promise` settles. */
async function runWhile<T>(world: SimWorld, promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  promise.then(
    (value) => (outcome = { ok: true, value }),
    (error: unknown) => (outcome = { ok: false, error }),
  );
  while (outcome === undefined) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (outcome !== undefined) break;
    const event = world.queue.pop();
    if (event === undefined) throw new Error('the simulation ran out of events while a request was pending');
    world.nowMs = event.timeMs;
    event.run();
  }
  return outcome;
}

/** Under lww every key ends with at most one value. */
function checkOneValue(finalValues: ReadonlyMap<string, readonly number[]>): CausalViolation[] {
  return [...finalValues].filter(([, values]) => values.length > 1).map(([key, values]): CausalViolation => ({ kind: 'divergence', message: `lww left ${values.length} values for ${key}` }));
}

/** Each key's owners hold the same set; no node holds a hint. */
async function checkConvergence(cluster: LeaderlessSimCluster): Promise<CausalViolation[]> {
  const violations: CausalViolation[] = [];
  const ring = cluster.node(cluster.ids[0]!)!.ring;
  for (const key of KEYS) {
    const owners = ring.preferenceList(Buffer.from(key), cluster.config.replicas);
    const sets = await Promise.all(owners.map((owner) => cluster.node(owner)!.replica.read(Buffer.from(key))));
    if (!sets.every((set) => sameDots(set, sets[0]!))) {
      violations.push({ kind: 'divergence', message: `the owners of ${key} did not converge: ${owners.map((owner, i) => `${owner}:[${idsOf(sets[i]!).join(',')}]`).join(' ')}` });
    }
  }
  for (const id of cluster.ids) {
    const hints = await cluster.node(id)!.store.hints(10);
    if (hints.length > 0) violations.push({ kind: 'hint-left', message: `node ${id} still holds ${hints.length} hint(s) after the quiet phase (for node ${hints[0]!.owner})` });
  }
  return violations;
}

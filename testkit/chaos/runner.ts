/**
 * One chaos run, start to verdict:
 *
 *   1. start the cluster (real `impulse serve` members on a controlled network)
 *      and wait for a leader; the workload's setup;
 *   2. run the workers and, beside them, the nemesis on the seeded schedule;
 *      a poller notes every leader change;
 *   3. at the end of the duration: heal everything (links, paused members,
 *      clocks, disks, dead members restarted), stop the workers, and measure
 *      recovery (time from the heal to the first acknowledged write);
 *   4. the final reads, then convergence (every replica's digest equal);
 *      a leaderless cluster is repaired first (anti-entropy on every member,
 *      `impulse repair`) and again until the digests agree or time runs out;
 *   5. the checks, and the results in --out: history.jsonl, faults.jsonl,
 *      summary.json, report.html.
 *
 * The verdict is `valid` when every check holds. The schedule is a pure
 * function of the seed; the run itself is not (real processes, real time).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../../src/client/client.js';
import { SeededRandom } from '../../src/util/random.js';
import { type CheckOutcome, checkConvergence, checkHistory, checkRecovery } from './checks.js';
import { ChaosCluster } from './cluster.js';
import { HistoryRecorder } from './history.js';
import { type FaultRecord, type Healer, applyFault, healDisks, restart } from './nemesis.js';
import type { NetworkMode } from './network.js';
import { renderReport } from './report.js';
import { type NemesisFamily, type ScheduledFault, makeSchedule } from './schedule.js';
import { Worker, type WorkloadName, createWorkload } from './workloads.js';

export const REPLICATION_MODES = ['raft', 'leaderless'] as const;
export type ReplicationMode = (typeof REPLICATION_MODES)[number];

export interface ChaosOptions {
  readonly nodes: number;
  readonly replication: ReplicationMode;
  readonly engine: string;
  readonly durationS: number;
  readonly nemesis: readonly NemesisFamily[];
  readonly seed: number;
  readonly workload: WorkloadName;
  /** Concurrent clients, spread over the members. Default 3 per member. */
  readonly workers?: number;
  readonly network?: NetworkMode;
  /** `--test-bug` for every member (a run that must fail). */
  readonly bugs?: string;
  /** After the final heal, a write must succeed within this bound, ms. Default 15,000. */
  readonly recoveryBoundMs?: number;
  /** A client request's timeout, ms. Default 2000: shorter than a member's own (5 s), so a client stuck on a cut-off member gives up, records `unknown`, and goes on as a new process (as Jepsen's clients do). */
  readonly opTimeoutMs?: number;
  /** Results directory; none written when absent. */
  readonly out?: string;
  /** Extra `impulse serve` flags for every member. */
  readonly serveArgs?: readonly string[];
  /** Raft only: a sharded cluster cut at these keys (`--split-keys`); faults aimed at "the leader" take turns among the shards' leaders. */
  readonly splitKeys?: readonly string[];
  /** Progress and log lines; default none. */
  readonly log?: (line: string) => void;
  /** A progress line about once a second (replaced in place on a terminal). */
  readonly progress?: (line: string) => void;
}

export interface LeaderChange {
  readonly atS: number;
  readonly leader: number | null;
}

export interface ChaosResult {
  readonly valid: boolean;
  readonly checks: readonly CheckOutcome[];
  readonly schedule: readonly ScheduledFault[];
  readonly faults: readonly FaultRecord[];
  readonly leaderChanges: readonly LeaderChange[];
  readonly history: HistoryRecorder;
  readonly recoveryMs: number | undefined;
  /** When the final heal was done, seconds since the workload started. */
  readonly healedAtS: number;
  readonly networkStats: Record<string, number>;
  readonly out: string | undefined;
}

const CONVERGENCE_WAIT_MS = 20_000;
const CONVERGENCE_STALL_MS = 8_000;
const DEFAULT_OP_TIMEOUT_MS = 2000;
const LEADER_WAIT_MS = 30_000;
/** One member's `impulse repair` (a hash-tree exchange with every other member). */
const REPAIR_TIMEOUT_MS = 30_000;

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => undefined);
  const schedule = makeSchedule({ seed: options.seed, durationS: options.durationS, nodes: options.nodes, families: options.nemesis });
  log(`chaos: ${options.nodes} nodes, ${options.replication}${options.splitKeys !== undefined ? ` sharded at ${options.splitKeys.join(',')}` : ''}, ${options.engine}, ${options.workload}, ${options.durationS}s, seed ${options.seed}, ${schedule.length} faults: ${options.nemesis.join(',') || 'none'}`);
  const root = await mkdtemp(join(tmpdir(), 'impulse-chaos-'));
  const cluster = await ChaosCluster.start({
    nodes: options.nodes,
    replication: options.replication,
    engine: options.engine,
    network: options.network ?? 'proxy',
    seed: options.seed,
    root,
    ...(options.bugs !== undefined ? { bugs: options.bugs } : {}),
    ...(options.serveArgs !== undefined ? { serveArgs: options.serveArgs } : {}),
    ...(options.splitKeys !== undefined ? { splitKeys: options.splitKeys } : {}),
  });
  try {
    return await runOnCluster(cluster, schedule, options, log);
  } finally {
    await cluster.close();
    await rm(root, { recursive: true, force: true });
  }
}

async function runOnCluster(cluster: ChaosCluster, schedule: ScheduledFault[], options: ChaosOptions, log: (line: string) => void): Promise<ChaosResult> {
  const workload = createWorkload(options.workload, cluster.leaderless);
  await waitFor(() => cluster.ready(), LEADER_WAIT_MS, cluster.leaderless ? 'cluster with every member up' : 'first leader');
  await retry(() => workload.setup(cluster.admin((cluster.slots[0]!))), 10_000);
  const recorder = new HistoryRecorder();
  const random = new SeededRandom(options.seed ^ 0x5eed);
  let processes = 0;
  const opTimeoutMs = options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS;
  const workers = Array.from({ length: options.workers ?? 3 * options.nodes }, (_, i) => {
    const node = cluster.slots[i % cluster.slots.length]!;
    return new Worker(i, node, cluster.url(node), random.fork(), recorder, () => ++processes, opTimeoutMs);
  });
  const leaderChanges: LeaderChange[] = [];
  const faults: FaultRecord[] = [];
  let running = true;
  let polling = true;
  // A leaderless cluster has no leader to follow.
  const poller = cluster.leaderless ? Promise.resolve() : pollLeader(cluster, recorder, leaderChanges, () => polling);
  const loops = workers.map((worker) => workLoop(worker, workload.step, () => running));
  const progress = startProgress(options, recorder, leaderChanges, faults);
  try {
    await runNemesis(schedule, cluster, recorder, faults, log);
    await sleepUntil(recorder, options.durationS);
  } finally {
    progress.stop();
  }
  // The final heal of everything, then the workers stop.
  const healed = await healAll(cluster);
  const healedAtS = recorder.now();
  log(`chaos: healed everything at ${healedAtS.toFixed(1)}s${healed.length > 0 ? ` (${healed.join('; ')})` : ''}`);
  running = false;
  await Promise.all(loops);
  const recoveryMs = await measureRecovery(cluster, recorder, options.recoveryBoundMs ?? 15_000);
  polling = false;
  await poller;
  if (cluster.leaderless) log(`chaos: repaired before the final reads: ${(await repairAll(cluster)).join('; ')}`);
  const finalFromS = recorder.now();
  // Through each member in turn until one answers every final read: a member may have failed for good.
  let attempt = 0;
  await retry(async () => {
    const id = cluster.slots[attempt++ % cluster.slots.length]!;
    const reader = new Worker(workers.length + attempt, id, cluster.url(id), random.fork(), recorder, () => ++processes, opTimeoutMs);
    const before = recorder.ops.length;
    try {
      await workload.finalReads(reader);
    } finally {
      reader.close();
    }
    if (recorder.ops.slice(before).some((op) => op.status !== 'ok')) throw new Error('a final read failed');
  }, 20_000).catch(() => log('chaos: some final reads failed; the checks say which'));
  for (const worker of workers) worker.close();
  const digests = cluster.leaderless ? await repairedDigests(cluster) : await settledDigests(cluster);
  // The members run N = members with the default quorums (R = W = ⌊N/2⌋+1): the quorums overlap and no stand-in ever holds a write.
  const mode = cluster.leaderless ? { leaderless: { overlappingQuorums: true } } : 'raft';
  const checks = [
    ...checkHistory(options.workload, recorder.ops, finalFromS, mode),
    checkConvergence(digests),
    checkRecovery(recoveryMs, options.recoveryBoundMs ?? 15_000),
  ];
  const result: ChaosResult = { valid: checks.every((check) => check.ok), checks, schedule, faults, leaderChanges, history: recorder, recoveryMs, healedAtS, networkStats: cluster.network.stats(), out: options.out };
  if (options.out !== undefined) {
    await writeResults(options, result);
    await mkdir(join(options.out, 'members'), { recursive: true });
    for (const [id, text] of cluster.processes.logs()) await writeFile(join(options.out, 'members', `node-${id}.log`), text);
  }
  return result;
}

async function workLoop(worker: Worker, step: (worker: Worker) => Promise<void>, running: () => boolean): Promise<void> {
  while (running()) {
    const before = Date.now();
    await step(worker);
    // A little breathing room (the machine is shared), more after a quick failure (a dead member refuses at once).
    await sleep(Date.now() - before < 5 ? 50 : 5);
  }
}

async function runNemesis(schedule: readonly ScheduledFault[], cluster: ChaosCluster, recorder: HistoryRecorder, faults: FaultRecord[], log: (line: string) => void): Promise<void> {
  for (const scheduled of schedule) {
    await sleepUntil(recorder, scheduled.atS);
    let heal: Healer | undefined;
    try {
      const applied = await applyFault(scheduled, cluster, () => recorder.now());
      faults.push(applied.record);
      heal = applied.heal;
      log(`chaos: ${applied.record.startS.toFixed(1)}s fault #${scheduled.id} ${applied.record.description} → ${applied.record.targets.join(',')} ${applied.record.notes.join('; ')}`);
    } catch (error) {
      log(`chaos: fault #${scheduled.id} could not be applied: ${(error as Error).message}`);
    }
    await sleepUntil(recorder, scheduled.atS + scheduled.durationS);
    const record = faults.at(-1);
    await heal?.().catch((error: unknown) => record?.notes.push(`heal failed: ${(error as Error).message}`));
    if (record !== undefined && record.id === scheduled.id) record.endS = recorder.now();
  }
}

/** Links, paused members, clocks, disks, dead members: everything back to healthy. Returns what it had to do. */
async function healAll(cluster: ChaosCluster): Promise<string[]> {
  const notes: string[] = [];
  cluster.network.heal();
  for (const id of cluster.slots) {
    if (cluster.processes.isPaused(id)) cluster.processes.signal(id, 'SIGCONT');
    cluster.processes.control(id, { clock: 'reset' });
  }
  await healDisks(cluster, cluster.slots, (text) => notes.push(text));
  await restart(cluster, cluster.slots, (text) => notes.push(text));
  return notes;
}

/** Writes a probe key through each member in turn until one write is acknowledged; ms from now, or undefined past the bound. */
async function measureRecovery(cluster: ChaosCluster, recorder: HistoryRecorder, boundMs: number): Promise<number | undefined> {
  const started = recorder.nowMs();
  for (let attempt = 0; recorder.nowMs() - started <= boundMs * 2; attempt++) {
    const id = cluster.slots[attempt % cluster.slots.length]!;
    const ok = await cluster.probeWrite(id, 'chaos/probe', String(attempt)).then(() => true, () => false);
    if (ok) return recorder.nowMs() - started;
    await sleep(50);
  }
  return undefined;
}

/**
 * Every slot's digest once they agree on the applied index, or what each said when they did not:
 * after CONVERGENCE_WAIT_MS, or sooner once no member's applied index has moved for
 * CONVERGENCE_STALL_MS (the clients have stopped, so only catching up moves it; a member stuck
 * on a diverged log never will).
 */
async function settledDigests(cluster: ChaosCluster): Promise<Map<number, { appliedIndex: number; digest: string } | string>> {
  const deadline = Date.now() + CONVERGENCE_WAIT_MS;
  let lastIndexes = '';
  let movedAt = Date.now();
  for (;;) {
    const answers = await Promise.all(cluster.slots.map((id) => cluster.admin(id).digest().then((digest) => digest, (error: unknown) => `no digest: ${(error as Error).message}`)));
    const digests = new Map(cluster.slots.map((id, i) => [id, answers[i]!] as const));
    const indexList = answers.map((answer) => (typeof answer === 'string' ? -1 : answer.appliedIndex));
    if (indexList.join() !== lastIndexes) (lastIndexes = indexList.join()), (movedAt = Date.now());
    const agreed = new Set(indexList).size === 1 && indexList[0] !== -1;
    if (agreed || Date.now() > deadline || Date.now() - movedAt > CONVERGENCE_STALL_MS) return digests;
    await sleep(200);
  }
}

/** `impulse repair` on every member in turn (anti-entropy with every other member); what each did, or why it failed. */
async function repairAll(cluster: ChaosCluster): Promise<string[]> {
  const notes: string[] = [];
  for (const id of cluster.slots) {
    const client = new ImpulseClient({ endpoint: cluster.url(id), timeoutMs: REPAIR_TIMEOUT_MS, writeRetriesMax: 0 });
    try {
      const report = await client.repair();
      notes.push(`node ${id}: ${JSON.stringify(report.exchanges)}`);
    } catch (error) {
      notes.push(`node ${id}: repair failed: ${(error as Error).message}`);
    } finally {
      client.close();
    }
  }
  return notes;
}

/**
 * A leaderless cluster's digests once they agree: every member owns every key
 * (N = members), so after repair they must be identical. Repairs again (read
 * repairs of the final reads may still be landing) until they agree, or two
 * rounds of repair in a row changed nothing (a repair that moves nothing will
 * not move it later), or CONVERGENCE_WAIT_MS has passed; then what each said.
 */
async function repairedDigests(cluster: ChaosCluster): Promise<Map<number, { appliedIndex: number; digest: string } | string>> {
  const deadline = Date.now() + CONVERGENCE_WAIT_MS;
  const seen: string[] = [];
  for (;;) {
    const answers = await Promise.all(cluster.slots.map((id) => cluster.admin(id).digest().then((digest) => digest, (error: unknown) => `no digest: ${(error as Error).message}`)));
    const digests = answers.map((answer) => (typeof answer === 'string' ? answer : answer.digest));
    seen.push(digests.join());
    const agreed = new Set(digests).size === 1 && typeof answers[0] !== 'string';
    const stalled = seen.length >= 3 && seen.slice(-3).every((round) => round === seen.at(-1));
    if (agreed || stalled || Date.now() > deadline) return new Map(cluster.slots.map((id, i) => [id, answers[i]!] as const));
    await repairAll(cluster);
    await sleep(300);
  }
}

async function pollLeader(cluster: ChaosCluster, recorder: HistoryRecorder, changes: LeaderChange[], running: () => boolean): Promise<void> {
  let last: number | null | undefined;
  while (running()) {
    const leader = (await cluster.leader()) ?? null;
    if (leader !== last) changes.push({ atS: recorder.now(), leader });
    last = leader;
    await sleep(200);
  }
}

function startProgress(options: ChaosOptions, recorder: HistoryRecorder, leaders: readonly LeaderChange[], faults: readonly FaultRecord[]): { stop(): void } {
  if (options.progress === undefined) return { stop: () => undefined };
  const timer = setInterval(() => {
    const counts = { ok: 0, fail: 0, unknown: 0 };
    for (const op of recorder.ops) counts[op.status]++;
    const active = faults.filter((fault) => fault.endS === undefined).map((fault) => fault.description);
    options.progress!(`[${recorder.now().toFixed(0)}/${options.durationS}s] ops ${recorder.ops.length} (ok ${counts.ok}, fail ${counts.fail}, unknown ${counts.unknown}) | leader ${leaders.at(-1)?.leader ?? '-'} | ${active.length > 0 ? active.join(', ') : 'no fault'}`);
  }, 1000);
  return { stop: () => clearInterval(timer) };
}

async function writeResults(options: ChaosOptions, result: ChaosResult): Promise<void> {
  const out = options.out!;
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'history.jsonl'), result.history.toJsonLines());
  await writeFile(join(out, 'faults.jsonl'), result.faults.map((fault) => JSON.stringify(fault)).join('\n') + '\n');
  const { log: _log, progress: _progress, ...shown } = options;
  const summary = { options: shown, valid: result.valid, checks: result.checks, schedule: result.schedule, leaderChanges: result.leaderChanges, recoveryMs: result.recoveryMs, healedAtS: result.healedAtS, networkStats: result.networkStats };
  await writeFile(join(out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  await writeFile(join(out, 'report.html'), renderReport({ title: `impulse chaos — seed ${options.seed}`, options: shown, ...result }));
}

async function retry(action: () => Promise<void>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await action();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`chaos: no ${what} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

function sleepUntil(recorder: HistoryRecorder, atS: number): Promise<void> {
  return sleep(Math.max(0, atS * 1000 - recorder.nowMs()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A failed run in a few lines, for test failures: the seed, the failed checks with their first details, the faults. */
export function describeFailure(result: ChaosResult, options: Pick<ChaosOptions, 'seed' | 'nemesis' | 'workload'>): string {
  const failed = result.checks.filter((check) => !check.ok).map((check) => `${check.name}: ${check.summary}\n  ${check.details.slice(0, 12).join('\n  ')}`);
  const faults = result.faults.map((fault) => `#${fault.id} ${fault.description} → ${fault.targets.join(',')} ${fault.notes.join('; ')}`);
  return `seed ${options.seed}, nemesis ${options.nemesis.join(',')}, workload ${options.workload}:\n${failed.join('\n')}\nfaults:\n  ${faults.join('\n  ')}`;
}

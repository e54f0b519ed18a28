/**
 * The poll: once a second (never two at once), the page's node's `/status`
 * (a node without --node-id has no "replication" there: then that is all),
 * its `/cluster`, every other member's `/status` through
 * `/cluster/nodes/{id}/status` (the page's node relays it; a member that does
 * not answer is down), and the leader's `/cluster` for the lag and last
 * contact only the leader knows, and the page's node's shard map (`/shards`).
 *
 * `RequestSeries` keeps the last `SAMPLES_MAX` polls' requests per second and
 * p99 per member, computed from consecutive /status samples of the same
 * process (figures.ts).
 */
import { type RequestSample, intervalFigures } from '../figures.js';
import { ApiFailure, describe, getJson } from './api.js';
import type { ClusterJson, ClusterSnapshot, MemberState, ShardsJson, StatusJson } from './model.js';

export const POLL_INTERVAL_MS = 1000;
/** Samples kept per chart: five minutes at one a second. */
export const SAMPLES_MAX = 300;

export class ClusterPoller {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private last: ClusterSnapshot | undefined;

  constructor(private readonly onSnapshot: (snapshot: ClusterSnapshot) => void) {}

  start(): void {
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async tick(): Promise<void> {
    const started = performance.now();
    const snapshot = await this.poll().catch((error: unknown) => (isAuthFailure(error) ? undefined : this.pageNodeDown(describe(error))));
    if (this.stopped) return;
    // A 401/403: the node answers but wants a (better) token; the page asks for one (api.ts), the figures stay as they were.
    if (snapshot !== undefined) {
      this.last = snapshot;
      this.onSnapshot(snapshot);
    }
    this.timer = setTimeout(() => void this.tick(), Math.max(0, POLL_INTERVAL_MS - (performance.now() - started)));
  }

  private async poll(): Promise<ClusterSnapshot> {
    const own = await getJson<StatusJson>('/status');
    if (own.replication === undefined) return singleNode(own);
    const cluster = await getJson<ClusterJson>('/cluster');
    const statuses = await Promise.all(
      cluster.members.map((member): Promise<Settled<StatusJson>> => (member.id === cluster.nodeId ? Promise.resolve({ ok: true, value: own }) : settle(getJson<StatusJson>(`/cluster/nodes/${member.id}/status`)))),
    );
    const [leaderView, shards] = await Promise.all([this.leaderView(cluster, statuses[cluster.members.findIndex((member) => member.id === cluster.leader)]), settle(getJson<ShardsJson>('/shards'))]);
    const progress = new Map((leaderView?.members ?? []).map((member) => [member.id, member]));
    const members = cluster.members.map((member, i): MemberState => {
      const answer = statuses[i]!;
      const status = answer.ok ? answer.value : null;
      const replication = status?.replication;
      const seen = progress.get(member.id);
      return {
        id: member.id,
        clientUrl: member.clientUrl,
        reachability: answer.ok ? 'up' : 'down',
        problem: answer.ok ? null : answer.problem,
        role: answer.ok ? (replication?.role ?? member.role) : 'unknown',
        term: replication?.term ?? null,
        commitIndex: replication?.commitIndex ?? null,
        appliedIndex: replication?.appliedIndex ?? status?.appliedIndex ?? null,
        lag: seen?.lag ?? null,
        lastContactMs: seen?.lastContactMs ?? null,
        status,
      };
    });
    return { mode: 'cluster', pageNodeUp: true, pageNodeProblem: null, clusterId: cluster.clusterId, nodeId: cluster.nodeId, leader: cluster.leader, term: cluster.term, members, shards: shards.ok ? shards.value : null, takenAtMs: Date.now() };
  }

  /** The leader's own view (it alone tracks the others' progress), unless the leader is down. */
  private async leaderView(cluster: ClusterJson, leaderStatus: Settled<StatusJson> | undefined): Promise<ClusterJson | undefined> {
    if (cluster.leader === null || leaderStatus === undefined || !leaderStatus.ok) return undefined;
    if (cluster.leader === cluster.nodeId) return cluster;
    const view = await settle(getJson<ClusterJson>(`/cluster/nodes/${cluster.leader}/cluster`));
    return view.ok ? view.value : undefined;
  }

  /** The page's own node did not answer: keep what was known, every member's state unknown. */
  private pageNodeDown(problem: string): ClusterSnapshot {
    const members = (this.last?.members ?? []).map((member): MemberState => ({ ...member, reachability: 'unknown', problem: null, status: null }));
    return { ...(this.last ?? emptySnapshot()), members, pageNodeUp: false, pageNodeProblem: problem, takenAtMs: Date.now() };
  }
}

function isAuthFailure(error: unknown): boolean {
  return error instanceof ApiFailure && (error.status === 401 || error.status === 403);
}

function singleNode(status: StatusJson): ClusterSnapshot {
  const member: MemberState = {
    id: 0,
    clientUrl: location.origin,
    reachability: 'up',
    problem: null,
    role: 'single node',
    term: null,
    commitIndex: null,
    appliedIndex: status.appliedIndex,
    lag: null,
    lastContactMs: null,
    status,
  };
  return { mode: 'single', pageNodeUp: true, pageNodeProblem: null, clusterId: null, nodeId: 0, leader: null, term: null, members: [member], shards: null, takenAtMs: Date.now() };
}

function emptySnapshot(): ClusterSnapshot {
  return { mode: 'unknown', pageNodeUp: false, pageNodeProblem: null, clusterId: null, nodeId: null, leader: null, term: null, members: [], shards: null, takenAtMs: Date.now() };
}

type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, problem: describe(error) }),
  );
}

/** Requests per second and p99 per member over the last polls, in uPlot's column layout. */
export class RequestSeries {
  /** Poll times, seconds since the epoch (uPlot's time axis). */
  readonly times: number[] = [];
  readonly requestsPerSecond = new Map<number, (number | null)[]>();
  readonly p99Ms = new Map<number, (number | null)[]>();
  private readonly previous = new Map<number, { pid: number; sample: RequestSample }>();

  /** Adds one point per member of `snapshot` (null where there is no figure: down, restarted, first sample). */
  add(snapshot: ClusterSnapshot): void {
    this.times.push(snapshot.takenAtMs / 1000);
    for (const member of snapshot.members) {
      const rates = column(this.requestsPerSecond, member.id, this.times.length - 1);
      const p99s = column(this.p99Ms, member.id, this.times.length - 1);
      const sample = member.status?.requests;
      const before = this.previous.get(member.id);
      const figures = sample !== undefined && before !== undefined && before.pid === member.status!.pid ? intervalFigures(before.sample, sample) : undefined;
      rates.push(figures?.requestsPerSecond ?? null);
      p99s.push(figures?.p99Ms ?? null);
      if (sample !== undefined) this.previous.set(member.id, { pid: member.status!.pid, sample });
      else this.previous.delete(member.id);
    }
    // A member that left the snapshot gets gaps, so every column stays as long as `times`.
    for (const columns of [this.requestsPerSecond, this.p99Ms]) {
      for (const values of columns.values()) if (values.length < this.times.length) values.push(null);
    }
    if (this.times.length > SAMPLES_MAX) {
      this.times.shift();
      for (const columns of [this.requestsPerSecond, this.p99Ms]) for (const values of columns.values()) values.shift();
    }
  }
}

/** The column of member `id`, created with `length` leading gaps. */
function column(columns: Map<number, (number | null)[]>, id: number, length: number): (number | null)[] {
  let values = columns.get(id);
  if (values === undefined) {
    values = new Array<number | null>(length).fill(null);
    columns.set(id, values);
  }
  return values;
}

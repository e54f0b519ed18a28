/**
 * A cluster of real `impulse serve --node-id ...` processes for tests: free
 * ports on 127.0.0.1 (or the hosts' addresses of a test network), one data
 * directory per member under a temp root, each member in its own process
 * group. Only what this helper started is ever signalled, by process group;
 * after a kill it waits until the process is gone.
 *
 *   const cluster = await ProcessCluster.start(3);
 *   const leader = await cluster.waitForLeader();
 *   cluster.client(2).put('k', 'v');
 *   await cluster.kill(leader);          // SIGKILL, waits for the exit
 *   await cluster.start(leader);         // same flags, same data directory
 *   await cluster.close();               // SIGKILL everything left, remove the root
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClientOptions, ImpulseClient } from '../../src/client/client.js';
import type { ClusterView } from '../../src/protocol/cluster-view.js';
import { freePorts } from './ports.js';
import { killGroupAndWait, reapOnExit, signalGroup, untilListening } from './member-process.js';
import { CLI_PATH } from './server-process.js';

export interface ProcessMemberSpec {
  readonly id: number;
  /** Address to bind and advertise (127.0.0.1, or a namespace's address). */
  readonly host: string;
  readonly clientPort: number;
  readonly peerPort: number;
}

export interface ProcessClusterOptions {
  /** Extra `impulse serve` flags for every member. */
  readonly serveArgs?: readonly string[];
  /** Extra flags for member `id` alone (its own certificate, say). */
  readonly memberArgs?: (id: number) => readonly string[];
  /** Members serve HTTPS (they were given --tls-cert): URLs and clients use https://. */
  readonly https?: boolean;
  /** Options for the clients `client(id)` makes (a CA, a token). */
  readonly clientOptions?: Pick<ClientOptions, 'ca' | 'cert' | 'key' | 'token'>;
  /** Runs a member's command elsewhere (e.g. inside a network namespace); default: a plain detached spawn. */
  readonly spawner?: (id: number, command: string, args: readonly string[]) => ChildProcess;
  readonly startTimeoutMs?: number;
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly output: string[];
}

export class ProcessCluster {
  private readonly running = new Map<number, Running>();
  private readonly clients = new Map<string, ImpulseClient>();
  private readonly members = new Map<number, ProcessMemberSpec>();
  /** Members that join an existing cluster (`--join`) instead of bootstrapping it. */
  private readonly joiners = new Map<number, string>();
  /** The --initial-cluster of the bootstrap: fixed, so restarts derive the same cluster id. */
  private readonly initialCluster: string;

  private constructor(
    readonly root: string,
    members: readonly ProcessMemberSpec[],
    private readonly options: ProcessClusterOptions,
  ) {
    for (const member of members) this.members.set(member.id, member);
    this.initialCluster = members.map((member) => `${member.id}=${member.host}:${member.peerPort}`).join(',');
  }

  /** Creates `count` members on 127.0.0.1 (free ports) and starts them all. */
  static async start(count: number, options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const ports = await freePorts(2 * count);
    const specs = Array.from({ length: count }, (_, i) => ({ id: i + 1, host: '127.0.0.1', clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]! }));
    return ProcessCluster.startWith(specs, options);
  }

  /** Starts the members `specs` of a new cluster. */
  static async startWith(specs: readonly ProcessMemberSpec[], options: ProcessClusterOptions = {}): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(await mkdtemp(join(tmpdir(), 'impulse-procs-')), specs, options);
    try {
      await Promise.all(specs.map((spec) => cluster.start(spec.id)));
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  url(id: number): string {
    const spec = this.spec(id);
    return `${this.options.https === true ? 'https' : 'http'}://${spec.host}:${spec.clientPort}`;
  }

  /** A keep-alive client of member `id` (closed by `close`). */
  client(id: number, timeoutMs = 10_000): ImpulseClient {
    // One client per member AND timeout: a short-timeout client for polling views must not serve slow admin calls.
    const key = `${id}/${timeoutMs}`;
    let client = this.clients.get(key);
    if (client === undefined) {
      client = new ImpulseClient({ endpoint: this.url(id), timeoutMs, ...this.options.clientOptions });
      this.clients.set(key, client);
    }
    return client;
  }

  /** Closes and forgets every client of member `id`. */
  private dropClients(id: number): void {
    for (const [key, client] of this.clients) {
      if (key.startsWith(`${id}/`)) {
        client.close();
        this.clients.delete(key);
      }
    }
  }

  dataDir(id: number): string {
    return join(this.root, `node-${id}`);
  }

  isRunning(id: number): boolean {
    return this.running.has(id);
  }

  /** The last lines member `id` wrote (for failure messages). */
  output(id: number): string {
    return (this.running.get(id)?.output ?? []).join('\n');
  }

  /**
   * A member that will join cluster `clusterId` (add it with the admin API,
   * then `start` it): it gets free ports on 127.0.0.1 and `--join`. Returns its
   * peer address and client URL.
   */
  async addJoiner(id: number, clusterId: string): Promise<{ peerUrl: string; clientUrl: string }> {
    const [clientPort, peerPort] = await freePorts(2);
    const spec = { id, host: '127.0.0.1', clientPort: clientPort!, peerPort: peerPort! };
    this.members.set(id, spec);
    this.joiners.set(id, clusterId);
    return { peerUrl: `${spec.host}:${spec.peerPort}`, clientUrl: this.url(id) };
  }

  /** The serve arguments of member `id`. */
  serveArgs(id: number, extra: readonly string[] = []): string[] {
    const spec = this.spec(id);
    const joining = this.joiners.get(id);
    const membership =
      joining === undefined
        ? ['--initial-cluster', this.initialCluster]
        : ['--join', '--cluster-id', joining, '--initial-cluster', [this.initialCluster, `${id}=${spec.host}:${spec.peerPort}`].join(',')];
    return [
      CLI_PATH, 'serve',
      '--node-id', String(id),
      '--host', spec.host, '--port', String(spec.clientPort),
      '--peer-port', String(spec.peerPort),
      ...membership,
      '--data-dir', this.dataDir(id),
      '--log-level', 'info',
      ...(this.options.serveArgs ?? []),
      ...(this.options.memberArgs?.(id) ?? []),
      ...extra,
    ];
  }

  /**
   * Starts member `id` (again) with its flags and data directory; resolves once it listens.
   * A port found taken (EADDRINUSE: another test's probe in ports.ts may hold it for a moment,
   * the lanes run side by side) is tried again, up to 3 times, half a second apart.
   */
  async start(id: number, extraArgs: readonly string[] = []): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.startOnce(id, extraArgs);
      } catch (error) {
        if (attempt >= 3 || !String(error).includes('EADDRINUSE')) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  private async startOnce(id: number, extraArgs: readonly string[]): Promise<void> {
    if (this.running.has(id)) throw new Error(`member ${id} is running`);
    const args = this.serveArgs(id, extraArgs);
    const child = this.options.spawner?.(id, process.execPath, args) ?? spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    reapOnExit(child);
    const output: string[] = [];
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const running = { child, exited, output };
    this.running.set(id, running);
    void exited.then(() => {
      if (this.running.get(id) === running) this.running.delete(id);
    });
    await untilListening(child, exited, output, `member ${id}`, this.options.startTimeoutMs ?? 30_000, 300).catch(async (error: unknown) => {
      await this.kill(id);
      throw error;
    });
  }

  /** The process id of member `id` while it runs (its group leader), for CPU figures from /proc. */
  pid(id: number): number | undefined {
    return this.running.get(id)?.child.pid;
  }

  /** Sends `signal` to member `id`'s process group. */
  signal(id: number, signal: NodeJS.Signals): void {
    signalGroup(this.running.get(id)?.child.pid, signal);
  }

  /** kill -9 of member `id`; resolves once the process has exited. */
  async kill(id: number): Promise<void> {
    const running = this.running.get(id);
    if (running === undefined) return;
    await killGroupAndWait(running.child.pid, running.exited);
    this.dropClients(id);
  }

  /** SIGTERM (graceful stop) of member `id`; resolves once it exited. */
  async stop(id: number): Promise<void> {
    const running = this.running.get(id);
    if (running === undefined) return;
    this.signal(id, 'SIGTERM');
    const timer = setTimeout(() => this.signal(id, 'SIGKILL'), 15_000);
    await running.exited;
    clearTimeout(timer);
    this.dropClients(id);
  }

  /** Member `id`'s view of the cluster, or undefined when it does not answer. */
  async view(id: number): Promise<ClusterView | undefined> {
    if (!this.running.has(id)) return undefined;
    return this.client(id, 2000).cluster().catch(() => undefined);
  }

  /** The leader every running member among `among` names, once they agree. */
  async waitForLeader(timeoutMs = 15_000, among: readonly number[] = [...this.running.keys()]): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const views = await Promise.all(among.map((id) => this.view(id)));
      const leaders = new Set(views.map((view) => view?.leader ?? null));
      const [leader] = [...leaders];
      if (leaders.size === 1 && typeof leader === 'number' && among.includes(leader)) return leader;
      if (Date.now() > deadline) throw new Error(`no agreed leader among ${among.join(',')} within ${timeoutMs} ms: ${views.map((view, i) => `${among[i]}→${view?.leader ?? '?'}`).join(' ')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Waits until every running member's /digest names the same applied index, and returns the digests by member. */
  async settledDigests(timeoutMs = 20_000): Promise<Map<number, { appliedIndex: number; digest: string }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ids = [...this.running.keys()];
      const digests = await Promise.all(ids.map((id) => this.client(id).digest()));
      if (new Set(digests.map((digest) => digest.appliedIndex)).size === 1) return new Map(ids.map((id, i) => [id, digests[i]!]));
      if (Date.now() > deadline) throw new Error(`members did not settle on one applied index: ${digests.map((d, i) => `${ids[i]}@${d.appliedIndex}`).join(' ')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Kills every member this helper started, closes the clients, removes the data. */
  async close(): Promise<void> {
    for (const id of [...this.running.keys()]) await this.kill(id);
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
    await rm(this.root, { recursive: true, force: true });
  }

  private spec(id: number): ProcessMemberSpec {
    const spec = this.members.get(id);
    if (spec === undefined) throw new Error(`no member ${id}`);
    return spec;
  }
}

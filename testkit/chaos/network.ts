/**
 * How a chaos run cuts and degrades the network between members:
 *
 *   proxy (default, no root needed)  a LinkProxy per directed link; each member
 *                                    dials its peers through them (the test-only
 *                                    `--test-dial-via` of `impulse serve`).
 *                                    Partitions, delay, loss, duplication, reordering.
 *   netns (root)                     each member in its own network namespace
 *                                    with its own address (testkit/process/netns.ts);
 *                                    partitions are iptables DROP rules in the
 *                                    namespaces. Partitions only: link faults need
 *                                    the proxy.
 *
 * Clients (the workload, the runner's probes) always reach every member: a
 * partition is between nodes, as in Jepsen.
 */
import { execFileSync } from 'node:child_process';
import { SeededRandom } from '../../src/util/random.js';
import { type TestNetwork, createNetwork } from '../process/netns.js';
import { freePorts } from '../process/ports.js';
import type { MemberSpec, Spawner } from './members.js';
import { HEALTHY_LINK, type LinkFaults, LinkProxy } from './proxy.js';

export type NetworkMode = 'proxy' | 'netns';

export interface ChaosNetwork {
  readonly mode: NetworkMode;
  /** Every slot's addresses (members and spares). */
  readonly specs: readonly MemberSpec[];
  /** Extra `impulse serve` flags member `id` needs. */
  serveArgs(id: number): string[];
  /** How to start member `id`'s process. */
  readonly spawner: Spawner | undefined;
  /** Cuts these directed links (from id, to id), replacing any earlier cut. */
  cut(links: ReadonlyArray<readonly [number, number]>): void;
  /** Degrades every link; throws where the mode cannot. */
  degrade(faults: Partial<LinkFaults>): void;
  /** Every link healthy again. */
  heal(): void;
  /** Frames dropped, duplicated, reordered so far (proxy mode), for the report. */
  stats(): Record<string, number>;
  close(): Promise<void>;
}

export async function createChaosNetwork(mode: NetworkMode, slots: number, seed: number): Promise<ChaosNetwork> {
  return mode === 'proxy' ? ProxyNetwork.create(slots, seed) : NetnsNetwork.create(slots);
}

class ProxyNetwork implements ChaosNetwork {
  readonly mode = 'proxy';
  readonly spawner = undefined;

  private constructor(
    readonly specs: readonly MemberSpec[],
    /** "from>to" → the proxy of that directed link. */
    private readonly links: ReadonlyMap<string, LinkProxy>,
  ) {}

  static async create(slots: number, seed: number): Promise<ProxyNetwork> {
    const ports = await freePorts(2 * slots);
    const specs = Array.from({ length: slots }, (_, i) => ({ id: i + 1, host: '127.0.0.1', clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]! }));
    const random = new SeededRandom(seed);
    const links = new Map<string, LinkProxy>();
    for (const from of specs) {
      for (const to of specs) {
        if (from === to) continue;
        links.set(`${from.id}>${to.id}`, await startAvoiding(new LinkProxy({ target: { host: to.host, port: to.peerPort }, random: random.fork(), name: `${from.id}→${to.id}` }), ports));
      }
    }
    return new ProxyNetwork(specs, links);
  }

  serveArgs(id: number): string[] {
    const via = this.specs
      .filter((spec) => spec.id !== id)
      .map((spec) => `${spec.host}:${spec.peerPort}=${formatHostPort(this.links.get(`${id}>${spec.id}`)!.address)}`);
    return ['--test-dial-via', via.join(',')];
  }

  cut(links: ReadonlyArray<readonly [number, number]>): void {
    const cut = new Set(links.map(([from, to]) => `${from}>${to}`));
    for (const [name, proxy] of this.links) proxy.set({ blocked: cut.has(name) });
  }

  degrade(faults: Partial<LinkFaults>): void {
    for (const proxy of this.links.values()) proxy.set(faults);
  }

  heal(): void {
    for (const proxy of this.links.values()) proxy.set(HEALTHY_LINK);
  }

  stats(): Record<string, number> {
    const total = { framesDropped: 0, framesDuplicated: 0, framesReordered: 0, framesForwarded: 0, connections: 0 };
    for (const proxy of this.links.values()) {
      for (const key of Object.keys(total) as (keyof typeof total)[]) total[key] += proxy.stats[key];
    }
    return total;
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((proxy) => proxy.close()));
  }
}

/**
 * Starts `proxy` on a free port that is none of `reserved` (the members' ports were picked free and
 * released, and the OS may hand one of them to a proxy before the member binds it).
 */
async function startAvoiding(proxy: LinkProxy, reserved: readonly number[]): Promise<LinkProxy> {
  for (let attempt = 0; ; attempt++) {
    await proxy.start();
    if (!reserved.includes(proxy.address.port)) return proxy;
    await proxy.close();
    if (attempt > 20) throw new Error('no free port for a link proxy outside the members\' ports');
  }
}

/** Fixed ports inside each namespace (every member has its own address). */
const NETNS_CLIENT_PORT = 7070;
const NETNS_PEER_PORT = 7171;

class NetnsNetwork implements ChaosNetwork {
  readonly mode = 'netns';
  readonly spawner: Spawner;
  readonly specs: readonly MemberSpec[];
  private cutRules = false;

  private constructor(private readonly network: TestNetwork) {
    this.specs = network.hosts.map((host, i) => ({ id: i + 1, host: host.ip, clientPort: NETNS_CLIENT_PORT, peerPort: NETNS_PEER_PORT }));
    this.spawner = (id, command, args, options) => network.hosts[id - 1]!.spawn(command, args, options);
  }

  static create(slots: number): NetnsNetwork {
    return new NetnsNetwork(createNetwork(slots));
  }

  serveArgs(): string[] {
    return [];
  }

  cut(links: ReadonlyArray<readonly [number, number]>): void {
    this.heal();
    for (const [from, to] of links) {
      const a = this.network.hosts[from - 1]!;
      const b = this.network.hosts[to - 1]!;
      iptables(a.namespace, '-A', 'OUTPUT', '-d', b.ip, '-j', 'DROP');
      iptables(b.namespace, '-A', 'INPUT', '-s', a.ip, '-j', 'DROP');
    }
    this.cutRules = links.length > 0;
  }

  degrade(): void {
    throw new Error('link faults (delay, loss, duplication, reordering) need --net proxy');
  }

  heal(): void {
    if (!this.cutRules) return;
    this.network.heal();
    this.cutRules = false;
  }

  stats(): Record<string, number> {
    return {};
  }

  async close(): Promise<void> {
    this.network.destroy();
  }
}

function iptables(namespace: string, ...args: string[]): void {
  execFileSync('ip', ['netns', 'exec', namespace, 'iptables', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function formatHostPort(address: { host: string; port: number }): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

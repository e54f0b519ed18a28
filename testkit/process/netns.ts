/**
 * Hosts with their own IP addresses on one machine, for tests of what crosses
 * a real network: each host is a Linux network namespace joined by a veth pair
 * to a bridge that the test process (in the root namespace) can reach too.
 * Partitions are iptables DROP rules inside the namespaces; healing flushes
 * them. Needs root and iproute2 + iptables (Debian packages); `netnsSupport()`
 * says why it cannot run, so a test can skip with that reason.
 *
 *   const net = await createNetwork(3);            // hosts 10.77.N.11, .12, .13
 *   const child = net.hosts[0].spawn(process.execPath, ['server.js']);
 *   await net.partition([[0], [1, 2]]);            // host 0 cut off from 1 and 2
 *   await net.heal();
 *   await net.destroy();                            // namespaces, veths, bridge gone
 *
 * Every name carries a random tag, so parallel runs never collide, and
 * `destroy` removes only what this network created.
 */
import { type ChildProcess, type SpawnOptions, execFileSync, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';

export interface NetnsHost {
  readonly index: number;
  /** The namespace's name (`ip netns exec <name> ...`). */
  readonly namespace: string;
  /** The host's address on the test network. */
  readonly ip: string;
  /** Starts a process inside the namespace, in its own process group. */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
}

export interface TestNetwork {
  readonly hosts: readonly NetnsHost[];
  /** The bridge's address: how hosts reach the test process. */
  readonly gatewayIp: string;
  /** Only hosts in the same group talk to each other (the test process still reaches all). */
  partition(groups: ReadonlyArray<readonly number[]>): void;
  /** Every host talks to every other again. */
  heal(): void;
  /** Removes the namespaces, veth pairs and bridge. Idempotent. */
  destroy(): void;
}

/** Why network namespaces cannot be used here, or undefined when they can. */
export function netnsSupport(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const [tool, versionFlag] of [['ip', '-V'], ['iptables', '--version']] as const) {
    try {
      execFileSync(tool, [versionFlag], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (Debian packages iproute2 and iptables)`;
    }
  }
  return undefined;
}

function run(command: string, ...args: string[]): void {
  execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function quietly(command: string, ...args: string[]): void {
  try {
    run(command, ...args);
  } catch {
    // already gone
  }
}

export function createNetwork(hostCount: number): TestNetwork {
  const reason = netnsSupport();
  if (reason !== undefined) throw new Error(`cannot create a test network: ${reason}`);
  if (hostCount < 1 || hostCount > 20) throw new Error('1 to 20 hosts');
  const tag = randomInt(0x10000).toString(16).padStart(4, '0');
  const subnet = `10.77.${randomInt(1, 255)}`;
  const bridge = `imbr${tag}`;
  const gatewayIp = `${subnet}.1`;
  const created: string[] = [];
  let destroyed = false;

  const hosts: NetnsHost[] = [];
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    for (const namespace of created) quietly('ip', 'netns', 'del', namespace);
    quietly('ip', 'link', 'del', bridge);
  };
  try {
    run('ip', 'link', 'add', bridge, 'type', 'bridge');
    run('ip', 'addr', 'add', `${gatewayIp}/24`, 'dev', bridge);
    run('ip', 'link', 'set', bridge, 'up');
    for (let index = 0; index < hostCount; index++) {
      const namespace = `imp-${tag}-${index}`;
      const ip = `${subnet}.${11 + index}`;
      const inside = `imh${tag}${index}`;
      const outside = `imb${tag}${index}`;
      run('ip', 'netns', 'add', namespace);
      created.push(namespace);
      run('ip', 'link', 'add', inside, 'type', 'veth', 'peer', 'name', outside);
      run('ip', 'link', 'set', inside, 'netns', namespace);
      run('ip', 'link', 'set', outside, 'master', bridge);
      run('ip', 'link', 'set', outside, 'up');
      run('ip', 'netns', 'exec', namespace, 'ip', 'addr', 'add', `${ip}/24`, 'dev', inside);
      run('ip', 'netns', 'exec', namespace, 'ip', 'link', 'set', inside, 'up');
      run('ip', 'netns', 'exec', namespace, 'ip', 'link', 'set', 'lo', 'up');
      run('ip', 'netns', 'exec', namespace, 'ip', 'route', 'add', 'default', 'via', gatewayIp);
      hosts.push({
        index,
        namespace,
        ip,
        spawn: (command, args, options = {}) => spawn('ip', ['netns', 'exec', namespace, command, ...args], { detached: true, ...options }),
      });
    }
  } catch (error) {
    destroy();
    throw error;
  }

  const flush = (): void => {
    for (const host of hosts) run('ip', 'netns', 'exec', host.namespace, 'iptables', '-F');
  };
  return {
    hosts,
    gatewayIp,
    partition(groups) {
      flush();
      const groupOf = new Map<number, number>();
      groups.forEach((group, groupIndex) => group.forEach((index) => groupOf.set(index, groupIndex)));
      for (const host of hosts) {
        for (const other of hosts) {
          if (other === host || groupOf.get(other.index) === groupOf.get(host.index)) continue;
          run('ip', 'netns', 'exec', host.namespace, 'iptables', '-A', 'INPUT', '-s', other.ip, '-j', 'DROP');
          run('ip', 'netns', 'exec', host.namespace, 'iptables', '-A', 'OUTPUT', '-d', other.ip, '-j', 'DROP');
        }
      }
    },
    heal: flush,
    destroy,
  };
}

/**
 * Leaderless nodes in one process on an in-memory network (test tooling).
 * Each node is the real `LeaderlessNode` on a memory engine with a real
 * `RpcEndpoint`; messages between endpoints are msgpack-encoded and decoded
 * (as on TCP) and delivered on a later turn of the event loop. A node can be
 * stopped (its messages dropped both ways, its engine kept: what was
 * acknowledged survives, as on a disk) and restarted, and the network can be
 * split into groups that only reach each other.
 *
 *   const net = await LeaderlessTestNetwork.open([1, 2, 3], { writeQuorum: 2 });
 *   net.stop(3); ...; await net.restart(3);
 *   net.partition([[1, 2], [3]]); ...; net.heal();
 *   await net.close();
 */
import { after } from 'node:test';
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import { DEFAULT_LEADERLESS_CONFIG, type LeaderlessConfig } from '../../src/leaderless/config.js';
import { LeaderlessNode } from '../../src/leaderless/node.js';
import type { NodeId } from '../../src/leaderless/dvv.js';
import type { Engine } from '../../src/storage/engine.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';
import { RpcEndpoint } from '../../src/transport/rpc.js';
import type { PeerMessage } from '../../src/transport/transport.js';
import { type Clock, SystemClock } from '../../src/util/clock.js';
import { SeededRandom } from '../../src/util/random.js';

const packr = new Packr({ useRecords: false });

/** Polls `check` every 20 ms until it holds; throws naming `what` after `timeoutMs` (generous: the machine may be loaded). */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
/**
 * For one `describe` block (call it in the block's body): an `open` that
 * opens a LeaderlessTestNetwork and closes every network it opened after the
 * block's tests.
 */
export function networksOfThisSuite(): (...args: Parameters<typeof LeaderlessTestNetwork.open>) => Promise<LeaderlessTestNetwork> {
  const networks: LeaderlessTestNetwork[] = [];
  after(async () => {
    for (const net of networks) await net.close();
  });
  return async (...args) => {
    const net = await LeaderlessTestNetwork.open(...args);
    networks.push(net);
    return net;
  };
}

const LIMITS = { keyBytesMax: 256, valueBytesMax: 4096 };

interface Member {
  readonly engine: Engine;
  node: LeaderlessNode | undefined;
  rpc: RpcEndpoint | undefined;
}

export class LeaderlessTestNetwork {
  private readonly members = new Map<NodeId, Member>();
  private groups: NodeId[][] | undefined;
  private readonly logger = pino({ level: 'silent' });
  private readonly clock: Clock = new SystemClock();
  private readonly random = new SeededRandom(7);
  /** SystemClock timers are unref'd: this keeps the process alive while the network is open (a test may wait only on RPC timeouts). */
  private readonly keepAlive = setInterval(() => undefined, 1000);

  /** The initial members; a member added with `addJoiner` starts with these as its view of the cluster. */
  private constructor(
    readonly ids: readonly NodeId[],
    readonly config: LeaderlessConfig,
  ) {}

  static async open(ids: readonly NodeId[], overrides: Partial<LeaderlessConfig> = {}): Promise<LeaderlessTestNetwork> {
    const config = { ...DEFAULT_LEADERLESS_CONFIG, heartbeatMs: 50, suspectAfterMs: 150, downAfterMs: 300, handoffIntervalMs: 50, requestTimeoutMs: 1000, ...overrides };
    const net = new LeaderlessTestNetwork(ids, config);
    for (const id of ids) await net.addJoiner(id);
    return net;
  }

  /**
   * Starts node `id` on a new engine. A node not among the initial `ids` is a
   * joiner (as `impulse serve --join`): it knows the initial members and owns
   * nothing until a membership change adds it.
   */
  async addJoiner(id: NodeId): Promise<void> {
    const engine = new MemoryEngine({ limits: { keyBytesMax: LIMITS.keyBytesMax + 16, valueBytesMax: 4 * LIMITS.valueBytesMax + 65_537 } });
    await engine.open();
    this.members.set(id, { engine, node: undefined, rpc: undefined });
    await this.restart(id);
  }

  node(id: NodeId): LeaderlessNode {
    const node = this.members.get(id)?.node;
    if (node === undefined) throw new Error(`node ${id} is stopped`);
    return node;
  }

  /** Stops node `id`: timers off, calls in flight fail, messages to and from it are dropped. Its engine is kept. */
  stop(id: NodeId): void {
    const member = this.members.get(id)!;
    member.node?.stop();
    member.rpc?.close();
    member.node = undefined;
    member.rpc = undefined;
  }

  /** Starts node `id` again on the engine it had (a process restart: nothing in memory survives). */
  async restart(id: NodeId): Promise<void> {
    const member = this.members.get(id)!;
    if (member.node !== undefined) this.stop(id);
    const rpc = new RpcEndpoint({ transport: { send: (to, message) => this.deliver(id, to, message) }, clock: this.clock, random: this.random.fork(), logger: this.logger });
    member.rpc = rpc;
    member.node = await LeaderlessNode.open({
      nodeId: id,
      members: this.ids,
      engine: member.engine,
      limits: LIMITS,
      rpc,
      clock: this.clock,
      wallClockMs: () => Date.now(),
      logger: this.logger,
      config: this.config,
      where: `node ${id}`,
      clientUrl: `http://node${id}.test:7070`,
    });
    member.node.start();
  }

  /** Only nodes in the same group reach each other until `heal()`. */
  partition(groups: NodeId[][]): void {
    this.groups = groups;
  }

  heal(): void {
    this.groups = undefined;
  }

  async close(): Promise<void> {
    clearInterval(this.keepAlive);
    for (const id of this.members.keys()) this.stop(id);
    for (const member of this.members.values()) await member.engine.close();
  }

  private deliver(from: NodeId, to: NodeId, message: PeerMessage): void {
    const bytes = packr.pack(message);
    setImmediate(() => {
      const target = this.members.get(to)?.rpc;
      if (target === undefined || this.members.get(from)?.rpc === undefined || !this.reachable(from, to)) return;
      target.onMessage(from, packr.unpack(bytes) as PeerMessage);
    });
  }

  private reachable(from: NodeId, to: NodeId): boolean {
    return this.groups === undefined || this.groups.some((group) => group.includes(from) && group.includes(to));
  }
}

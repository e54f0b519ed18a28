/**
 * The leaderless simulator's cluster: every node is the PRODUCT
 * `LeaderlessNode` (coordinator, replica, failure detector, hinted handoff)
 * with a real `RpcEndpoint`, on the simulator's virtual clock, its seeded
 * random and this simulated network. Each node's storage is a memory engine
 * that outlives the node's crashes (it is the node's "disk").
 *
 * Network: each message is msgpack-encoded and decoded (as on TCP), delayed
 * 1-10 ms (now and then 30-80 ms: that reorders), lost with probability 1%
 * (10% while lossy), and dropped when either end is down or the link is cut
 * at sending or at arrival.
 *
 * Crash model: a crash loses everything in the node's memory (calls in
 * flight, queues, the detector, the hybrid clock, coordinations under way);
 * its engine keeps every write that completed. A store write completes within
 * the event that issued it (the memory engine resolves in microtasks and the
 * simulator drains them after each event), so a crash never tears one — what
 * a replica acknowledged was stored before the acknowledgement left.
 */
import { Packr } from 'msgpackr';
import { pino } from 'pino';
import type { LeaderlessMutations } from '../../../src/leaderless/coordinator.js';
import type { NodeId } from '../../../src/leaderless/dvv.js';
import type { LeaderlessConfig } from '../../../src/leaderless/config.js';
import { LeaderlessNode } from '../../../src/leaderless/node.js';
import { ImpulseError } from '../../../src/errors.js';
import type { Engine } from '../../../src/storage/engine.js';
import { MemoryEngine } from '../../../src/storage/memory/memory-engine.js';
import { RpcEndpoint } from '../../../src/transport/rpc.js';
import type { PeerMessage } from '../../../src/transport/transport.js';
import type { SimWorld } from '../world.js';

const packr = new Packr({ useRecords: false });
export const SIM_LIMITS = { keyBytesMax: 64, valueBytesMax: 64 };

interface SimNode {
  readonly id: NodeId;
  readonly engine: MemoryEngine;
  /** Wall-clock skew of this node, ms (lww timestamps). */
  readonly skewMs: number;
  node: LeaderlessNode | undefined;
  rpc: RpcEndpoint | undefined;
  /** The running incarnation's fence: false once it crashed (see `fenced`). */
  alive: { value: boolean };
}

/** The transfer step's bound in the simulator: the keys are few, so 10 s of virtual time is plenty, and a lost step message costs that, not the product's 2 minutes of client traffic. */
const SIM_TRANSFER_TIMEOUT_MS = 10_000;

export class LeaderlessSimCluster {
  private readonly nodes = new Map<NodeId, SimNode>();
  private cut = new Set<string>();
  lossy = false;
  messagesSent = 0;
  messagesDropped = 0;
  private readonly logger = pino({ level: 'silent' });

  /** Every node the simulation has (the initial ones, then joiners), in the order they came. */
  private readonly all: NodeId[];

  /** `initialIds`: the bootstrap membership (what a joiner also knows until it is added). */
  constructor(
    private readonly world: SimWorld,
    private readonly initialIds: readonly NodeId[],
    readonly config: LeaderlessConfig,
    private readonly mutations: LeaderlessMutations | undefined,
  ) {
    this.all = [...initialIds];
  }

  /** Every node, members or not (a joiner before it is added, a member after it left). */
  get ids(): readonly NodeId[] {
    return this.all;
  }

  async open(): Promise<void> {
    for (const id of this.initialIds) await this.addNode(id);
  }

  /** Creates node `id` on a new engine and starts it; a node not among the initial ones is a joiner (owns nothing until a change adds it). */
  async addNode(id: NodeId): Promise<void> {
    const engine = new MemoryEngine({ limits: { keyBytesMax: SIM_LIMITS.keyBytesMax + 16, valueBytesMax: 4 * SIM_LIMITS.valueBytesMax + 65_537 } });
    await engine.open();
    this.nodes.set(id, { id, engine, skewMs: this.world.random.between(-50, 50), node: undefined, rpc: undefined, alive: { value: false } });
    if (!this.all.includes(id)) this.all.push(id);
    await this.start(id);
  }

  /** The running node `id`, or undefined while it is down. */
  node(id: NodeId): LeaderlessNode | undefined {
    return this.nodes.get(id)!.node;
  }

  isUp(id: NodeId): boolean {
    return this.nodes.get(id)!.node !== undefined;
  }

  upNodes(): NodeId[] {
    return this.ids.filter((id) => this.isUp(id));
  }

  crash(id: NodeId): void {
    const sim = this.nodes.get(id)!;
    if (sim.node === undefined) return;
    sim.node.stop();
    sim.rpc!.close();
    sim.node = undefined;
    sim.rpc = undefined;
    sim.alive.value = false;
    this.world.trace(`crash ${id}`);
  }

  async start(id: NodeId): Promise<void> {
    const sim = this.nodes.get(id)!;
    if (sim.node !== undefined) return;
    const alive = { value: true };
    sim.alive = alive;
    const rpc = new RpcEndpoint({ transport: { send: (to, message) => this.send(id, to, message) }, clock: this.world.clock, random: this.world.random.fork(), logger: this.logger });
    const node = await LeaderlessNode.open({
      nodeId: id,
      members: this.initialIds,
      engine: fenced(sim.engine, () => alive.value),
      limits: SIM_LIMITS,
      rpc,
      clock: this.world.clock,
      wallClockMs: () => this.world.nowMs + sim.skewMs,
      logger: this.logger,
      config: this.config,
      where: `sim node ${id}`,
      transferTimeoutMs: SIM_TRANSFER_TIMEOUT_MS,
      ...(this.mutations !== undefined ? { mutations: this.mutations } : {}),
    });
    sim.rpc = rpc;
    sim.node = node;
    node.start();
    this.world.trace(`start ${id}`);
  }

  /** Cuts every link between different groups (both ways). */
  partition(groups: readonly (readonly NodeId[])[]): void {
    this.cut = new Set();
    for (const a of this.ids) for (const b of this.ids) if (a !== b && !groups.some((group) => group.includes(a) && group.includes(b))) this.cut.add(`${a}>${b}`);
    this.world.trace(`partition ${groups.map((group) => group.join(',')).join(' | ')}`);
  }

  heal(): void {
    this.cut = new Set();
    this.lossy = false;
    this.world.trace('heal');
  }

  async close(): Promise<void> {
    for (const id of this.ids) this.crash(id);
    for (const sim of this.nodes.values()) await sim.engine.close();
  }

  private send(from: NodeId, to: NodeId, message: PeerMessage): void {
    this.messagesSent++;
    const random = this.world.random;
    if (this.cut.has(`${from}>${to}`) || random.chance(this.lossy ? 0.1 : 0.01)) {
      this.messagesDropped++;
      return;
    }
    const bytes = packr.pack(message);
    const delayMs = random.chance(0.05) ? random.between(30, 80) : random.between(1, 10);
    // A message already sent still arrives if its sender crashes meanwhile (as on TCP); an answer meant for a crashed incarnation matches no call.
    this.world.at(delayMs, () => {
      const target = this.nodes.get(to)?.rpc;
      if (target === undefined || this.cut.has(`${from}>${to}`)) {
        this.messagesDropped++;
        return;
      }
      target.onMessage(from, packr.unpack(bytes) as PeerMessage);
    });
  }
}

/**
 * The engine as one incarnation of a node sees it: once that incarnation
 * crashed, its leftover promise chains (a coordination under way, a read
 * repair) can no longer touch the disk, as a dead process cannot.
 */
function fenced(engine: MemoryEngine, alive: () => boolean): Engine {
  return new Proxy(engine, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        if (!alive()) return Promise.reject(new ImpulseError('IMPULSE_ERR_ENGINE_NOT_OPEN', 'this node crashed'));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/**
 * The simulator's clients: each issues one operation at a time (get, put,
 * compare-and-set, delete) to the node it believes leads, with a 400 ms
 * timeout, and records every call and answer for the linearizability checker.
 * A write that times out or ends with an unknown outcome stays in the history
 * with no return (it may take effect later); a read nobody saw constrains
 * nothing and is left out. A request the cluster certainly did not apply
 * (not leader, overloaded, superseded, aborted read) leaves no trace.
 *
 * Bursts (the nemesis's `request-burst`) fire many one-shot requests at once
 * from fresh client ids, to drive the leader's bounds on pending proposals and
 * reads: they must end in typed IMPULSE_ERR_RAFT_OVERLOADED refusals, never in
 * lost or duplicated writes.
 */
import type { NodeId } from '../../src/raft/types.js';
import type { KvInput, Operation } from '../check/linearizability.js';
import type { ClientOp, ClientReply, SimCluster } from './cluster.js';
import type { KvWrite } from './kv.js';
import type { SimWorld } from './world.js';

const CLIENT_TIMEOUT_MS = 400;
/** Client ids of burst requests start here (each is a one-shot client). */
const BURST_CLIENT_BASE = 1000;

interface Client {
  readonly id: number;
  leaderGuess: NodeId;
  current: { request: Request; callMs: number } | null;
  nextRequestId: number;
  lastSeen: Map<string, string | null>;
  /** One-shot clients of a burst issue nothing after their request. */
  readonly oneShot: boolean;
}

interface Request {
  readonly clientId: number;
  readonly requestId: number;
  readonly input: KvInput;
}

export class SimClients {
  readonly history: Operation[] = [];
  /** Set when every fault healed: completions from then on count for liveness. */
  chaosOver = false;
  stopped = false;
  private readonly clients = new Map<number, Client>();
  private nextBurstClient = BURST_CLIENT_BASE;

  constructor(
    private readonly world: SimWorld,
    private readonly cluster: SimCluster,
    private readonly keys: readonly string[],
  ) {}

  start(count: number): void {
    for (let id = 1; id <= count; id++) {
      const client = this.newClient(id, false);
      this.world.at(this.world.random.between(0, 50), () => this.issue(client));
    }
  }

  /** `count` one-shot requests to `target` at once (mostly reads, some writes). */
  burst(target: NodeId, count: number): void {
    for (let i = 0; i < count; i++) {
      const client = this.newClient(this.nextBurstClient++, true);
      client.leaderGuess = target;
      this.issue(client, this.world.random.chance(0.8) ? 'get' : undefined);
    }
  }

  /** Operations still in flight end with an unknown outcome. */
  finish(): void {
    for (const client of this.clients.values()) if (client.current !== null) this.recordUnknown(client, 'still in flight');
  }

  private newClient(id: number, oneShot: boolean): Client {
    const client: Client = { id, leaderGuess: 0, current: null, nextRequestId: 1, lastSeen: new Map(), oneShot };
    this.clients.set(id, client);
    return client;
  }

  private input(client: Client, kind?: 'get'): KvInput {
    const world = this.world;
    const key = world.pick(this.keys);
    const value = `${client.id}.${client.nextRequestId}`;
    const roll = kind === 'get' ? 0 : world.random.next();
    if (roll < 0.4) return { kind: 'get', key };
    if (roll < 0.7) return { kind: 'put', key, value };
    if (roll < 0.9) return { kind: 'cas', key, expected: client.lastSeen.get(key) ?? null, value };
    return { kind: 'delete', key };
  }

  private issue(client: Client, kind?: 'get'): void {
    const world = this.world;
    if (this.stopped) return;
    const input = this.input(client, kind);
    const request: Request = { clientId: client.id, requestId: client.nextRequestId++, input };
    client.current = { request, callMs: world.nowMs };
    const members = this.cluster.members();
    const target = client.leaderGuess !== 0 && members.includes(client.leaderGuess) ? client.leaderGuess : world.pick(members);
    world.trace(`client c${client.id} call #${request.requestId} ${JSON.stringify(input)} -> n${target}`);
    const op: ClientOp = input.kind === 'get' ? { kind: 'get', key: input.key } : { kind: 'write', command: { clientId: client.id, requestId: request.requestId, write: input as KvWrite } };
    world.at(0.5 + world.random.next() * 2, () => this.cluster.request(target, op, (reply) => this.answer(client, request, target, reply)));
    world.at(CLIENT_TIMEOUT_MS, () => {
      if (client.current?.request !== request) return;
      this.recordUnknown(client, 'timeout');
      client.leaderGuess = 0;
      this.next(client, world.random.between(1, 20));
    });
  }

  private next(client: Client, delayMs: number): void {
    if (!client.oneShot) this.world.at(delayMs, () => this.issue(client));
  }

  /** The answer travels back to the client, which may have given up on it already. */
  private answer(client: Client, request: Request, from: NodeId, reply: ClientReply): void {
    const world = this.world;
    world.at(0.5 + world.random.next() * 2, () => {
      const current = client.current;
      if (current === null || current.request !== request) return;
      world.trace(`client c${client.id} reply #${request.requestId} from n${from} ${JSON.stringify(reply)}`);
      if (reply.kind === 'unknown') {
        this.recordUnknown(client, reply.code);
        client.leaderGuess = 0;
        return this.next(client, world.random.between(1, 20));
      }
      client.current = null;
      if (reply.kind === 'rejected') {
        world.stats.opsRejected++;
        if (reply.code === 'IMPULSE_ERR_RAFT_OVERLOADED') world.stats.opsOverloaded++;
        client.leaderGuess = reply.leaderHint;
        return this.next(client, world.random.between(1, 15));
      }
      this.history.push({ clientId: client.id, input: request.input, call: current.callMs, return: world.nowMs, output: reply.output });
      world.stats.opsOk++;
      if (this.chaosOver) world.stats.quietOpsOk++;
      client.leaderGuess = from;
      if (reply.output.kind === 'get') client.lastSeen.set(request.input.key, reply.output.value);
      this.next(client, world.random.next() * 10);
    });
  }

  private recordUnknown(client: Client, why: string): void {
    const current = client.current!;
    client.current = null;
    this.world.trace(`client c${client.id} unknown #${current.request.requestId} (${why})`);
    // A read nobody saw constrains nothing; a write may still take effect later.
    if (current.request.input.kind !== 'get') {
      this.history.push({ clientId: client.id, input: current.request.input, call: current.callMs, return: undefined, output: undefined });
      this.world.stats.opsUnknown++;
    }
  }
}

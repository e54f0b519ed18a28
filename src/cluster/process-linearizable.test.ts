/**
 * Linearizability of a real three-member cluster under leader faults: eight
 * clients run gets, puts and conditional puts (unique values) on three hot
 * keys through every member while the leader is killed (kill -9, then
 * restarted) — and, in a second run, paused with SIGSTOP past the election
 * timeout and resumed, when it still believes it leads. The recorded history
 * goes to `checkKvLinearizability` (testkit/check). Writes whose outcome is
 * unknown (no answer, a timeout, IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN) are
 * recorded as such; requests refused before anything happened are left out.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ImpulseClient } from '../client/client.js';
import { isImpulseError } from '../errors.js';
import { type KvInput, type KvOutput, type Operation, checkKvLinearizability, formatOperations } from '../../testkit/check/linearizability.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';

const KEYS = ['x', 'y', 'z'];
const CLIENTS = 8;
/** Refusals that say the request had no effect. */
const NO_EFFECT = new Set(['IMPULSE_ERR_UNAVAILABLE', 'IMPULSE_ERR_RAFT_NOT_LEADER', 'IMPULSE_ERR_SHUTTING_DOWN', 'IMPULSE_ERR_RAFT_READ_ABORTED', 'IMPULSE_ERR_OVERLOADED', 'IMPULSE_ERR_RAFT_OVERLOADED']);

class History {
  readonly operations: Operation[] = [];
  private stopped = false;
  private readonly start = performance.now();

  constructor(private readonly cluster: ProcessCluster) {}

  stop(): void {
    this.stopped = true;
  }

  run(): Promise<void> {
    return Promise.all(Array.from({ length: CLIENTS }, (_, c) => this.client(c))).then(() => undefined);
  }

  private now(): number {
    return performance.now() - this.start;
  }

  private async client(clientId: number): Promise<void> {
    let member = (clientId % 3) + 1;
    const clients = new Map<number, ImpulseClient>();
    const clientOf = (id: number): ImpulseClient => {
      let client = clients.get(id);
      if (client === undefined) {
        // No retries inside the client: every attempt is one recorded operation.
        client = new ImpulseClient({ endpoint: this.cluster.url(id), timeoutMs: 3000, writeRetriesMax: 0 });
        clients.set(id, client);
      }
      return client;
    };
    try {
      for (let n = 0; !this.stopped; n++) {
        const key = KEYS[(clientId + n) % KEYS.length]!;
        const client = clientOf(member);
        const moved = await this.operation(client, clientId, key, `c${clientId}-${n}`, n % 3);
        if (moved) member = (member % 3) + 1;
      }
    } finally {
      for (const client of clients.values()) client.close();
    }
  }

  /** One operation (0: get, 1: put, 2: get then a conditional put on what it read); true when the member did not answer. */
  private async operation(client: ImpulseClient, clientId: number, key: string, value: string, kind: number): Promise<boolean> {
    const read = await this.record(clientId, { kind: 'get', key }, async () => {
      const found = await client.getWithRevision(key);
      return { output: { kind: 'get', value: found?.value.toString() ?? null }, revision: found?.revision };
    });
    if (read === 'unreachable') return true;
    if (kind === 0 || read === 'skipped') return false;
    if (kind === 1) return (await this.record(clientId, { kind: 'put', key, value }, async () => (await client.put(key, value), { output: { kind: 'put' } }))) === 'unreachable';
    const expected = read.output.kind === 'get' ? read.output.value : null;
    const condition = read.revision === undefined ? { ifAbsent: true } : { ifRevision: read.revision };
    const outcome = await this.record(clientId, { kind: 'cas', key, expected, value }, async () => {
      try {
        await client.put(key, value, condition);
        return { output: { kind: 'cas', ok: true } };
      } catch (error) {
        if (isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED')) return { output: { kind: 'cas', ok: false } };
        throw error;
      }
    });
    return outcome === 'unreachable';
  }

  /** Runs `work` and records it; refusals with no effect are left out, other failures recorded with an unknown outcome. */
  private async record(
    clientId: number,
    input: KvInput,
    work: () => Promise<{ output: KvOutput; revision?: number | undefined }>,
  ): Promise<{ output: KvOutput; revision?: number | undefined } | 'skipped' | 'unreachable'> {
    const call = this.now();
    try {
      const result = await work();
      this.operations.push({ clientId, input, call, return: this.now(), output: result.output });
      return result;
    } catch (error) {
      const noEffect = isImpulseError(error) && NO_EFFECT.has(error.code);
      if (input.kind !== 'get' && !noEffect) this.operations.push({ clientId, input, call, return: undefined, output: undefined });
      const unreachable = isImpulseError(error, 'IMPULSE_ERR_CLIENT_UNREACHABLE') || isImpulseError(error, 'IMPULSE_ERR_CLIENT_TIMEOUT');
      await new Promise((resolve) => setTimeout(resolve, 20));
      return unreachable ? 'unreachable' : 'skipped';
    }
  }
}

async function runAndCheck(fault: (cluster: ProcessCluster, leader: number) => Promise<void>): Promise<{ operations: number; completed: number }> {
  const cluster = await ProcessCluster.start(3);
  try {
    const leader = await cluster.waitForLeader();
    const history = new History(cluster);
    const running = history.run();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await fault(cluster, leader);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    history.stop();
    await running;
    const result = checkKvLinearizability(history.operations);
    if (result.verdict === 'not-linearizable') assert.fail(`not linearizable on key ${result.key}: ${result.explanation}\n${formatOperations(result.operations)}`);
    assert.equal(result.verdict, 'linearizable', JSON.stringify(result));
    const completed = history.operations.filter((operation) => operation.return !== undefined).length;
    assert.ok(completed > 100, `only ${completed} operations completed`);
    return { operations: history.operations.length, completed };
  } finally {
    await cluster.close();
  }
}

describe('linearizability of a process cluster under leader faults', () => {
  after(() => undefined);

  it('kill -9 of the leader (then its restart): the history is linearizable', async (t) => {
    const { operations, completed } = await runAndCheck(async (cluster, leader) => {
      await cluster.kill(leader);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await cluster.start(leader);
    });
    t.diagnostic(`${operations} operations, ${completed} completed`);
  });

  it('SIGSTOP of the leader past the election timeout, then SIGCONT: the history is linearizable', async (t) => {
    const { operations, completed } = await runAndCheck(async (cluster, leader) => {
      cluster.signal(leader, 'SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, 2500));
      cluster.signal(leader, 'SIGCONT');
    });
    t.diagnostic(`${operations} operations, ${completed} completed`);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { ImpulseError, isImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import { SeededRandom } from '../util/random.js';
import { RpcEndpoint, type RpcDone } from './rpc.js';
import { ManualClock, ManualNetwork, closeAll, startCluster, waitFor } from '../../testkit/transport/harness.js';

const silent = pino({ level: 'silent' });

function endpoints(options: { callsInFlightMax?: number; callsInFlightPerPeerMax?: number } = {}, ids: NodeId[] = [1, 2, 3]) {
  const clock = new ManualClock();
  const network = new ManualNetwork(clock);
  const rpcs = new Map<NodeId, RpcEndpoint>();
  for (const id of ids) {
    const transport = network.join(id, (from, message) => rpcs.get(id)!.onMessage(from, message));
    rpcs.set(id, new RpcEndpoint({ transport, clock, random: new SeededRandom(id), logger: silent, ...options }));
  }
  return { clock, network, rpc: (id: NodeId) => rpcs.get(id)! };
}

/** Records every `done` call of a call. */
function recorder(): { done: RpcDone; calls: { error: ImpulseError | null; response: unknown }[] } {
  const calls: { error: ImpulseError | null; response: unknown }[] = [];
  return { done: (error, response) => void calls.push({ error, response }), calls };
}

async function microtasks(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

describe('RpcEndpoint', () => {
  it('answers a call; the response reaches only the caller', async () => {
    const { clock, rpc } = endpoints();
    rpc(2).serve('echo', (from, body, reply) => reply(null, { from, body }));
    const result = recorder();
    rpc(1).call(2, 'echo', 'hi', 100, result.done);
    clock.advance(2);
    assert.deepEqual(result.calls, [{ error: null, response: { from: 1, body: 'hi' } }]);
    assert.equal(rpc(1).stats().inFlight, 0);
  });

  it('carries a remote error with its catalog code and details; unknown codes become INTERNAL', async () => {
    const { clock, rpc } = endpoints();
    rpc(3).serve('kv', (_from, body, reply) => {
      if (body === 'weird') reply(Object.assign(new ImpulseError('IMPULSE_ERR_INTERNAL'), { code: 'NOT_A_CODE' }) as ImpulseError);
      else reply(new ImpulseError('IMPULSE_ERR_RAFT_NOT_LEADER', 'not me', { details: { leader: 2 } }));
    });
    const notLeader = recorder();
    rpc(1).call(3, 'kv', 'put', 100, notLeader.done);
    const weird = recorder();
    rpc(1).call(3, 'kv', 'weird', 100, weird.done);
    clock.advance(2);
    assert.ok(isImpulseError(notLeader.calls[0]!.error, 'IMPULSE_ERR_RAFT_NOT_LEADER'));
    assert.equal(notLeader.calls[0]!.error!.details.leader, 2);
    assert.ok(isImpulseError(weird.calls[0]!.error, 'IMPULSE_ERR_INTERNAL'));
  });

  it('times out on the Clock, exactly once; a late response is ignored and counted', async () => {
    const { clock, rpc } = endpoints();
    const held: RpcDone[] = [];
    rpc(2).serve('slow', (_from, _body, reply) => void held.push(reply));
    const result = recorder();
    rpc(1).call(2, 'slow', null, 50, result.done);
    clock.advance(49);
    assert.equal(result.calls.length, 0);
    clock.advance(1);
    assert.equal(result.calls.length, 1);
    assert.ok(isImpulseError(result.calls[0]!.error, 'IMPULSE_ERR_RPC_TIMEOUT'));
    held[0]!(null, 'too late');
    clock.advance(10);
    assert.equal(result.calls.length, 1);
    assert.equal(rpc(1).stats().lateResponses, 1);
    assert.equal(rpc(1).stats().timeouts, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  it('a lost request is a timeout', async () => {
    const { clock, network, rpc } = endpoints();
    rpc(2).serve('x', (_from, _body, reply) => reply(null, 1));
    network.dropping = () => true;
    const result = recorder();
    rpc(1).call(2, 'x', null, 30, result.done);
    clock.advance(100);
    assert.ok(isImpulseError(result.calls[0]!.error, 'IMPULSE_ERR_RPC_TIMEOUT'));
  });

  it('bounds calls in flight per peer and overall: excess fails fast (asynchronously) with RPC_OVERLOADED', async () => {
    const { clock, rpc } = endpoints({ callsInFlightMax: 5, callsInFlightPerPeerMax: 3 });
    rpc(2).serve('hold', () => undefined);
    rpc(3).serve('hold', () => undefined);
    const results = Array.from({ length: 7 }, () => recorder());
    for (let i = 0; i < 4; i++) rpc(1).call(2, 'hold', i, 1000, results[i]!.done);
    assert.equal(results[3]!.calls.length, 0, 'never synchronously inside call()');
    await microtasks();
    assert.ok(isImpulseError(results[3]!.calls[0]!.error, 'IMPULSE_ERR_RPC_OVERLOADED'), '4th call to one peer');
    for (let i = 4; i < 7; i++) rpc(1).call(3, 'hold', i, 1000, results[i]!.done);
    await microtasks();
    assert.equal(results[4]!.calls.length + results[5]!.calls.length, 0);
    assert.ok(isImpulseError(results[6]!.calls[0]!.error, 'IMPULSE_ERR_RPC_OVERLOADED'), '6th call overall');
    assert.equal(rpc(1).stats().inFlight, 5);
    clock.advance(1000);
    assert.equal(rpc(1).stats().inFlight, 0);
    const after = recorder();
    rpc(1).call(2, 'hold', 'again', 10, after.done);
    assert.equal(rpc(1).stats().inFlight, 1, 'capacity is back after the timeouts');
  });

  it('ignores a response from another node than the one called, and malformed envelopes', async () => {
    const { clock, network, rpc } = endpoints();
    rpc(2).serve('x', () => undefined);
    const result = recorder();
    let requestId = -1;
    network.dropping = (_from, _to, message) => {
      if (Array.isArray(message.body) && message.body[0] === 0) requestId = message.body[1] as number;
      return false;
    };
    rpc(1).call(2, 'x', null, 100, result.done);
    rpc(1).onMessage(3, { channel: 'x', group: 0, body: [1, requestId, 'forged'] });
    rpc(1).onMessage(2, { channel: 'x', group: 0, body: 'not an envelope' });
    rpc(1).onMessage(2, { channel: 'x', group: 0, body: [7, requestId, null] });
    clock.advance(5);
    assert.equal(result.calls.length, 0);
    assert.equal(rpc(1).stats().lateResponses, 1);
    assert.equal(rpc(1).stats().malformed, 2);
  });

  it('a handler that throws answers INTERNAL and is counted; an unserved channel answers INTERNAL', async () => {
    const { clock, rpc } = endpoints();
    rpc(2).serve('bad', () => {
      throw new Error('bug');
    });
    const thrown = recorder();
    const unserved = recorder();
    rpc(1).call(2, 'bad', null, 100, thrown.done);
    rpc(1).call(2, 'nobody', null, 100, unserved.done);
    clock.advance(2);
    assert.ok(isImpulseError(thrown.calls[0]!.error, 'IMPULSE_ERR_INTERNAL'));
    assert.ok(isImpulseError(unserved.calls[0]!.error, 'IMPULSE_ERR_INTERNAL'));
    assert.equal(rpc(2).stats().handlerErrors, 1);
  });

  it('close() fails calls in flight and later calls with TRANSPORT_CLOSED', async () => {
    const { rpc } = endpoints();
    rpc(2).serve('hold', () => undefined);
    const pending = rpc(1).callAsync(2, 'hold', null, 1000);
    rpc(1).close();
    rpc(1).close();
    await assert.rejects(pending, (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_CLOSED'));
    await assert.rejects(rpc(1).callAsync(2, 'hold', null, 1000), (error) => isImpulseError(error, 'IMPULSE_ERR_TRANSPORT_CLOSED'));
  });

  it('property: every call completes exactly once, as the model predicts, within the in-flight bounds', async () => {
    // Model (network delay 1 ms each way, so an answer given after a ms arrives at +a+2):
    // a call answers with its value iff it was admitted, nothing was lost and a + 2 < timeout;
    // otherwise it times out. It is refused (OVERLOADED) only when a bound was reached.
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            to: fc.constantFrom(2, 3),
            answerAfterMs: fc.option(fc.nat(80)),
            timeoutMs: fc.integer({ min: 1, max: 60 }),
            gapMs: fc.nat(5),
            lose: fc.constantFrom('nothing', 'request', 'response'),
          }),
          { maxLength: 60 },
        ),
        async (calls) => {
          const { clock, network, rpc } = endpoints({ callsInFlightMax: 8, callsInFlightPerPeerMax: 5 });
          network.dropping = (_from, _to, message) => {
            const [kind, , payload] = message.body as [number, number, unknown];
            const index = kind === 0 ? (payload as { index: number }).index : (payload as number);
            return calls[index]!.lose === (kind === 0 ? 'request' : 'response');
          };
          for (const id of [2, 3]) {
            rpc(id).serve('op', (_from, body, reply) => {
              const { answerAfterMs, index } = body as { answerAfterMs: number | null; index: number };
              if (answerAfterMs !== null) clock.setTimer(answerAfterMs, () => reply(null, index));
            });
          }
          const outcomes: (string | number)[][] = calls.map(() => []);
          const inFlightBefore: number[] = [];
          calls.forEach((call, index) => {
            inFlightBefore.push(rpc(1).stats().inFlight);
            rpc(1).call(call.to, 'op', { answerAfterMs: call.answerAfterMs, index }, call.timeoutMs, (error, response) => {
              outcomes[index]!.push(error === null ? (response as number) : error.code);
            });
            assert.ok(rpc(1).stats().inFlight <= 8);
            clock.advance(call.gapMs);
          });
          clock.advance(200);
          await microtasks();
          for (const [index, outcome] of outcomes.entries()) {
            assert.equal(outcome.length, 1, `call ${index} completed ${outcome.length} times`);
            const call = calls[index]!;
            if (outcome[0] === 'IMPULSE_ERR_RPC_OVERLOADED') {
              assert.ok(inFlightBefore[index]! >= 5, `call ${index} refused with only ${inFlightBefore[index]} in flight`);
              continue;
            }
            const answers = call.lose === 'nothing' && call.answerAfterMs !== null && call.answerAfterMs + 2 < call.timeoutMs;
            assert.equal(outcome[0], answers ? index : 'IMPULSE_ERR_RPC_TIMEOUT', `call ${index}`);
          }
          assert.equal(rpc(1).stats().inFlight, 0);
          assert.equal(clock.pendingTimers, 0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('runs over the real TCP transport', async () => {
    const nodes = await startCluster(2);
    const [a, b] = nodes;
    const clock = new ManualClock();
    const rpcA = new RpcEndpoint({ transport: a!.transport, clock, random: new SeededRandom(1), logger: silent });
    const rpcB = new RpcEndpoint({ transport: b!.transport, clock, random: new SeededRandom(2), logger: silent });
    a!.inbox.onMessageHook = (from, message) => rpcA.onMessage(from, message);
    b!.inbox.onMessageHook = (from, message) => rpcB.onMessage(from, message);
    rpcB.serve('sum', (_from, body, reply) => reply(null, (body as number[]).reduce((x, y) => x + y, 0)));
    try {
      let answer: unknown = null;
      rpcA.call(2, 'sum', [1, 2, 3], 5_000, (error, response) => (answer = error ?? response));
      await waitFor('answer', () => answer !== null);
      assert.equal(answer, 6);
    } finally {
      await closeAll(nodes);
    }
  });
});


/**
 * PutCoalescer over a real single-node service (memory engine): a turn's
 * submissions become one command, within the batch limits; errors reach every
 * submitter; a cross-shard refusal splits the batch by submission.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ImpulseError } from '../errors.js';
import { type KvCommand, type KvOp, validateCommand } from '../kv/command.js';
import type { KvService } from '../service/kv-service.js';
import { openLocalKvService } from '../service/open-local.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { PutCoalescer } from './put-coalescer.js';

const LIMITS = { ...DEFAULT_LIMITS, batchOpsMax: 8 };

async function memoryService(): Promise<KvService> {
  return openLocalKvService({ engine: 'memory', dataDir: '/nonexistent-unused-by-memory', sync: 'none', limits: LIMITS });
}

/** A coalescer whose turn ends when the test says (`endTurn`). */
function manualCoalescer(service: KvService): { coalescer: PutCoalescer; endTurn: () => void } {
  const deferred: (() => void)[] = [];
  const coalescer = new PutCoalescer(service, service.limits, (send) => deferred.push(send));
  return { coalescer, endTurn: () => deferred.splice(0).forEach((send) => send()) };
}

const put = (key: string, value: string): KvOp => ({ type: 'put', key: Buffer.from(key), value: Buffer.from(value) });
const submit = (coalescer: PutCoalescer, ops: KvOp[]): Promise<void> => coalescer.submit(ops, validateCommand({ ops }, LIMITS));
const text = async (service: KvService, key: string): Promise<string | undefined> => (await service.get(Buffer.from(key)))?.value.toString();

describe('PutCoalescer', () => {
  it('sends the submissions of one turn as few commands as the batch limits allow; a later put of a key wins (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.string({ maxLength: 3 })), { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 12 }), async (groups) => {
        const service = await memoryService();
        try {
          const { coalescer, endTurn } = manualCoalescer(service);
          const before = (await service.status()).appliedIndex;
          const answers = groups.map((group) => submit(coalescer, group.map(([key, value]) => put(key, value))));
          endTurn();
          await Promise.all(answers);
          // The model: batches filled in submission order up to batchOpsMax ops, one command each.
          let commands = 0;
          let ops = LIMITS.batchOpsMax;
          for (const group of groups) {
            if (ops + group.length > LIMITS.batchOpsMax) [commands, ops] = [commands + 1, 0];
            ops += group.length;
          }
          assert.equal((await service.status()).appliedIndex - before, commands);
          const last = new Map<string, string>(groups.flat());
          for (const key of ['a', 'b', 'c', 'd']) assert.equal(await text(service, key), last.get(key));
        } finally {
          await service.close();
        }
      }),
      { numRuns: 30 },
    );
  });

  it('sends nothing before the turn ends, and a new turn after it', async () => {
    const service = await memoryService();
    try {
      const { coalescer, endTurn } = manualCoalescer(service);
      const first = submit(coalescer, [put('k', '1')]);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(await text(service, 'k'), undefined);
      endTurn();
      await first;
      const second = submit(coalescer, [put('k', '2')]);
      endTurn();
      await second;
      assert.equal(await text(service, 'k'), '2');
      assert.equal((await service.status()).appliedIndex, 2);
    } finally {
      await service.close();
    }
  });

  it("rejects every submission of a command the service refuses, with the service's error", async () => {
    const service = await memoryService();
    const { coalescer, endTurn } = manualCoalescer(service);
    await service.close();
    const answers = [submit(coalescer, [put('a', '1')]), submit(coalescer, [put('b', '1'), put('c', '1')])].map((answer) => answer.then(() => 'applied', (error: unknown) => (error as ImpulseError).code));
    endTurn();
    assert.deepEqual(await Promise.all(answers), ['IMPULSE_ERR_SHUTTING_DOWN', 'IMPULSE_ERR_SHUTTING_DOWN']);
  });

  it('writes each submission on its own when a one-key-per-write service (leaderless) refuses the batch; a two-key submission gets the refusal', async () => {
    const service = await memoryService();
    const oneKeyPerWrite = new Proxy(service, {
      get(target, property, receiver) {
        if (property !== 'write') return Reflect.get(target, property, receiver) as unknown;
        return (command: KvCommand) => (command.ops.length > 1 ? Promise.reject(new ImpulseError('IMPULSE_ERR_LEADERLESS_UNSUPPORTED', 'one key at a time')) : target.write(command));
      },
    });
    try {
      const { coalescer, endTurn } = manualCoalescer(oneKeyPerWrite);
      const answers = [[put('a', '1')], [put('b', '2')], [put('c', '3'), put('d', '4')]].map((ops) =>
        submit(coalescer, ops).then(() => 'applied', (error: unknown) => (error as ImpulseError).code),
      );
      endTurn();
      assert.deepEqual(await Promise.all(answers), ['applied', 'applied', 'IMPULSE_ERR_LEADERLESS_UNSUPPORTED']);
      assert.deepEqual(await Promise.all(['a', 'b', 'c', 'd'].map((key) => text(service, key))), ['1', '2', undefined, undefined]);
    } finally {
      await service.close();
    }
  });

  it('writes each submission on its own when the service refuses the batch as cross-shard; a cross-shard submission gets the refusal', async () => {
    const service = await memoryService();
    const shardOf = (op: KvOp): number => op.key[0]!; // the first byte names the "shard"
    const sharded = new Proxy(service, {
      get(target, property, receiver) {
        if (property !== 'write') return Reflect.get(target, property, receiver) as unknown;
        return (command: KvCommand) =>
          new Set(command.ops.map(shardOf)).size > 1 ? Promise.reject(new ImpulseError('IMPULSE_ERR_BATCH_CROSS_SHARD', 'the batch writes keys of 2 shards')) : target.write(command);
      },
    });
    try {
      const { coalescer, endTurn } = manualCoalescer(sharded);
      const answers = [[put('a1', 'x'), put('a2', 'x')], [put('b1', 'y')], [put('a3', 'z'), put('b2', 'z')]].map((ops) =>
        submit(coalescer, ops).then(() => 'applied', (error: unknown) => (error as ImpulseError).code),
      );
      endTurn();
      assert.deepEqual(await Promise.all(answers), ['applied', 'applied', 'IMPULSE_ERR_BATCH_CROSS_SHARD']);
      assert.deepEqual(await Promise.all(['a1', 'a2', 'b1', 'a3', 'b2'].map((key) => text(service, key))), ['x', 'x', 'y', undefined, undefined]);
    } finally {
      await service.close();
    }
  });
});

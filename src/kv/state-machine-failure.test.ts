/**
 * What the state machine does when the engine fails a write: if the engine
 * does not show the batch, everything in memory (sessions, applied index) is
 * as before and the same entries can be applied again with the same results;
 * if the engine shows it anyway (state unknown), the machine stops taking writes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImpulseError, isImpulseError } from '../errors.js';
import { DelegatingEngine } from '../../testkit/storage/delegating-engine.js';
import { TEST_LIMITS } from '../../testkit/kv/state-machine-suite.js';
import type { KvCommand } from './command.js';
import { MemoryEngineHome } from './engine-home.js';
import { type ApplyEntry, KvStateMachine, engineLimitsFor } from './state-machine.js';

/** An engine whose next `_write` fails when armed: before applying (`'before'`) or after (`'after'`). */
class FailingEngine extends DelegatingEngine {
  failNext: 'before' | 'after' | undefined;

  constructor() {
    super({
      limits: engineLimitsFor(TEST_LIMITS),
      onWrite: async (_ops, _sync, apply) => {
        const mode = this.failNext;
        this.failNext = undefined;
        if (mode === 'before') throw new ImpulseError('IMPULSE_ERR_ENGINE_IO', 'injected: nothing written');
        await apply();
        if (mode === 'after') throw new ImpulseError('IMPULSE_ERR_ENGINE_IO', 'injected: written, then failed');
      },
    });
  }
}

const put = (key: string, value: string, seq: number, condition?: { ifAbsent: true }): KvCommand => ({
  ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from(value), ...(condition ? { condition } : {}) }],
  session: { clientId: 'c', seq },
});

async function machineOn(engine: FailingEngine): Promise<KvStateMachine> {
  return KvStateMachine.open({ home: new MemoryEngineHome(() => engine), limits: TEST_LIMITS, sessions: { windowSeqs: 4, clientsMax: 2 } });
}

describe('kv state machine: failed engine writes', () => {
  it('leaves sessions and the applied index as they were when the engine did not write the batch', async () => {
    const engine = new FailingEngine();
    const machine = await machineOn(engine);
    await machine.applyBatch([{ index: 1, term: 1, type: 'command', command: put('a', '1', 1) }]);
    const entries: ApplyEntry[] = [
      { index: 2, term: 1, type: 'command', command: put('b', '2', 2) },
      { index: 3, term: 1, type: 'command', command: put('b', '3', 3, { ifAbsent: true }) },
    ];
    engine.failNext = 'before';
    await assert.rejects(machine.applyBatch(entries), /injected: nothing written/);
    assert.equal(machine.appliedIndex, 1);
    assert.equal(machine.failedWith, undefined);
    // Applied again, the same entries give the same results: seq 2 and 3 were not remembered.
    const results = await machine.applyBatch(entries);
    assert.deepEqual(results[0], { ok: true, revision: 2 });
    assert.equal(results[1]?.ok, false);
    assert.deepEqual(await machine.get(Buffer.from('b')), { value: Buffer.from('2'), revision: 2 });
    await machine.close();
  });

  it('stops taking writes when the engine shows a batch whose write failed, and keeps serving reads', async () => {
    const engine = new FailingEngine();
    const machine = await machineOn(engine);
    engine.failNext = 'after';
    await assert.rejects(machine.applyBatch([{ index: 1, term: 1, type: 'command', command: put('a', '1', 1) }]), /written, then failed/);
    assert.ok(machine.failedWith !== undefined);
    await assert.rejects(machine.applyBatch([{ index: 2, term: 1, type: 'noop' }]), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_IO') && /stopped/.test((error as Error).message));
    await assert.rejects(machine.flush(), /stopped/);
    assert.equal((await machine.get(Buffer.from('a')))?.revision, 1);
    await machine.close();
  });
});

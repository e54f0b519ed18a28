/**
 * The shared suite of the key-value state machine, run on every engine from
 * src/kv/state-machine.test.ts:
 *
 *   runStateMachineSuite({ name: 'lsm', create: async () => ({ home: () => new DirectoryEngineHome(vfs, 'db', ...), durable: true, cleanup }) });
 *
 * `create()` makes a fresh place to keep a store; its `home()` opens a home
 * over it (calling it again after a close reopens the same data).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isImpulseError } from '../../src/errors.js';
import { type KvCommand, type KvLimits, type KvOp, encodeCommand } from '../../src/kv/command.js';
import type { EngineHome } from '../../src/kv/engine-home.js';
import { type ApplyEntry, type ApplyResult, KvStateMachine } from '../../src/kv/state-machine.js';
import { KvModel, type ModelResult } from './model.js';
import { type EntrySpec, type Hint, KEYS, Planner, SESSIONS } from './workload.js';

export interface StateMachineStore {
  home(): EngineHome;
  readonly durable: boolean;
  cleanup(): Promise<void>;
}

export interface StateMachineTarget {
  readonly name: string;
  create(): Promise<StateMachineStore>;
  /** Fewer fast-check runs for slow engines. Default 40. */
  readonly propertyRuns?: number;
}

export const TEST_LIMITS: KvLimits = { keyBytesMax: 64, valueBytesMax: 1024, batchOpsMax: 16, batchBytesMax: 64 * 1024, rangeLimitMax: 1000 };

/** Every user entry of a machine as `hex=valuehex@revision`, in key order. */
export async function dumpMachine(machine: KvStateMachine): Promise<string[]> {
  const items = await machine.range({ limit: 1000 });
  return items.map((item) => `${item.key.toString('hex')}=${item.value.toString('hex')}@${item.revision}`);
}

/** A result as the model writes it. */
export function asModelResult(result: ApplyResult): ModelResult {
  if (result.ok) return { ok: true, revision: result.revision };
  if ('error' in result) return { ok: false, error: result.error.code };
  return { ok: false, failed: { op: result.failed.op, key: result.failed.key.toString('hex'), revision: result.failed.revision } };
}

type Step = { readonly kind: 'apply'; readonly entries: EntrySpec[]; readonly sync: boolean } | { readonly kind: 'read'; readonly key: number } | { readonly kind: 'reopen' } | { readonly kind: 'flush' };

const opSpec = fc.record({
  type: fc.constantFrom('put' as const, 'put' as const, 'del' as const),
  key: fc.nat(KEYS.length - 1),
  value: fc.uint8Array({ maxLength: 6 }).map((bytes) => Buffer.from(bytes)),
  hint: fc.constantFrom<Hint>('none', 'none', 'current', 'stale', 'absent'),
});
const metaValue = fc.option(fc.uint8Array({ maxLength: 4 }).map((b) => Buffer.from(b)), { nil: null });
const entrySpec: fc.Arbitrary<EntrySpec> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('command' as const),
      ops: fc.array(opSpec, { minLength: 0, maxLength: 3 }),
      session: fc.option(
        fc.record({
          client: fc.constantFrom(0, 0, 0, 0, 1, 2),
          mode: fc.constantFrom('next' as const, 'next' as const, 'retry' as const, 'retry' as const, 'old' as const),
          pick: fc.nat(),
          acked: fc.constantFrom(false, false, false, true),
        }),
        { nil: null },
      ),
      encoded: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        kind: fc.constant('meta' as const),
        name: fc.constantFrom('members', 'shard'),
        value: metaValue,
        // Further values at the same index; a malformed name makes the whole entry change nothing.
        more: fc.array(fc.record({ name: fc.constantFrom('members', 'shard', 'bounds', 'not a name'), value: metaValue }), { maxLength: 2 }),
      },
      { requiredKeys: ['kind', 'name', 'value'] },
    ),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('noop' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('refused' as const) }) },
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('apply' as const), entries: fc.array(entrySpec, { minLength: 1, maxLength: 5 }), sync: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), key: fc.nat(KEYS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
);

export function runStateMachineSuite(target: StateMachineTarget): void {
  describe(`kv state machine: ${target.name}`, () => {
    const stores: StateMachineStore[] = [];
    const machines: KvStateMachine[] = [];
    after(async () => {
      for (const machine of machines) await machine.close().catch(() => undefined);
      for (const store of stores) await store.cleanup();
    });
    async function fresh(): Promise<{ store: StateMachineStore; machine: KvStateMachine }> {
      const store = await target.create();
      stores.push(store);
      const machine = await KvStateMachine.open({ home: store.home(), limits: TEST_LIMITS, sessions: SESSIONS });
      machines.push(machine);
      return { store, machine };
    }

    it('gives each written key the index of its write, checks conditions against the state before each command, and applies the rest of the batch', async () => {
      const { machine } = await fresh();
      const k = Buffer.from('k');
      const put = (value: string, condition?: KvOp['condition']): KvCommand => ({ ops: [{ type: 'put', key: k, value: Buffer.from(value), ...(condition ? { condition } : {}) }] });
      const results = await machine.applyBatch([
        { index: 1, term: 1, type: 'command', command: put('v1', { ifAbsent: true }) },
        { index: 2, term: 1, type: 'command', command: put('v2', { ifAbsent: true }) }, // k exists since entry 1 of the same batch
        { index: 3, term: 1, type: 'command', command: put('v3', { ifRevision: 1 }) },
        { index: 4, term: 1, type: 'command', command: { ops: [{ type: 'del', key: k, condition: { ifRevision: 1 } }] } }, // stale now
        { index: 5, term: 1, type: 'noop' },
      ]);
      assert.deepEqual(results.map(asModelResult), [
        { ok: true, revision: 1 },
        { ok: false, failed: { op: 0, key: k.toString('hex'), revision: 1 } },
        { ok: true, revision: 3 },
        { ok: false, failed: { op: 0, key: k.toString('hex'), revision: 3 } },
        { ok: true, revision: 5 },
      ]);
      assert.deepEqual(await machine.get(k), { value: Buffer.from('v3'), revision: 3 });
      assert.equal(machine.appliedIndex, 5);
      await assert.rejects(machine.applyBatch([{ index: 7, term: 1, type: 'noop' }]), /consecutively/);
    });

    it('answers a retried session write with its first result and applies it once', async () => {
      const { machine } = await fresh();
      const command: KvCommand = { ops: [{ type: 'put', key: Buffer.from('n'), value: Buffer.from('1') }], session: { clientId: 'c', seq: 1 } };
      const [first, second] = await machine.applyBatch([
        { index: 1, term: 1, type: 'command', command },
        { index: 2, term: 1, type: 'command', command: encodeCommand(command) },
      ]);
      assert.deepEqual(first, { ok: true, revision: 1 });
      assert.deepEqual(second, { ok: true, revision: 1 });
      assert.equal((await machine.get(Buffer.from('n')))?.revision, 1);
    });

    it('refuses to open an engine that holds data but no format key, and leaves it untouched', async (t) => {
      const store = await target.create();
      stores.push(store);
      if (!store.durable) {
        t.skip(`${target.name} keeps nothing between opens, so there is no older data to find`);
        return;
      }
      const home = store.home();
      const slot = await home.openLive();
      await slot.engine.put(Buffer.from('user/1'), Buffer.from('written by an older impulse'));
      await slot.engine.close();
      await assert.rejects(KvStateMachine.open({ home: store.home(), limits: TEST_LIMITS }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED'));
      const again = await store.home().openLive();
      assert.deepEqual(await again.engine.get(Buffer.from('user/1')), Buffer.from('written by an older impulse'));
      await again.engine.close();
    });

    it('matches the model on random commands with conditions, sessions, duplicates, metadata and reopens (fast-check)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
          let { store, machine } = await fresh();
          const model = new KvModel(SESSIONS);
          const planner = new Planner(model);
          for (const current of steps) {
            if (current.kind === 'apply') {
              // Plan against the model entry by entry: conditions must see earlier entries of the batch.
              const expected: ModelResult[] = [];
              const entries: ApplyEntry[] = [];
              for (const spec of current.entries) {
                const { entry, command } = planner.entry(spec, model.appliedIndex + 1);
                entries.push(entry);
                expected.push(model.apply(entry, command));
              }
              const results = await machine.applyBatch(entries, { sync: current.sync });
              assert.deepEqual(results.map(asModelResult), expected);
            } else if (current.kind === 'read') {
              const key = KEYS[current.key]!;
              const stored = await machine.get(key);
              const modelled = model.data.get(key.toString('hex'));
              assert.deepEqual(stored === undefined ? undefined : { value: stored.value.toString('hex'), revision: stored.revision }, modelled === undefined ? undefined : { value: modelled.value.toString('hex'), revision: modelled.revision });
            } else if (current.kind === 'flush') {
              await machine.flush();
              assert.equal(machine.durableAppliedIndex, machine.appliedIndex);
            } else if (store.durable) {
              await machine.close();
              machine = await KvStateMachine.open({ home: store.home(), limits: TEST_LIMITS, sessions: SESSIONS });
              machines.push(machine);
            }
            assert.equal(machine.appliedIndex, model.appliedIndex);
          }
          assert.deepEqual(await dumpMachine(machine), model.dump());
          for (const [name, value] of model.metadata) assert.deepEqual(await machine.getMeta(name), value);
          await machine.close();
          void store;
        }),
        { numRuns: target.propertyRuns ?? 40, seed: 0x6b76 },
      );
    });
  });
}

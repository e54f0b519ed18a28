/**
 * `Engine.getSync` against `get` while writes, flushes and compactions run:
 * a fast-check property for engines whose synchronous read can say
 * READ_NOT_SYNC (lsm, btree).
 *
 *   await checkGetSyncAgreesWithGet(() => new LsmEngine({ ...tiny }), { runs: 30 });
 *
 * Each command either starts a write without waiting for it (so group commit
 * batches several and background work runs between them), reads a key with
 * `getSync` and `get` in the same tick (they must agree whenever `getSync`
 * answers: `get` decides its answer when called, before any await), lets the
 * event loop turn, or waits for every write and compares both reads of every
 * key with a model. It fails if `getSync` answers from a stale or a future
 * state, and if it never answers or never declines (when `expect` says so),
 * so a test cannot pass by covering only one path.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { type Engine, READ_NOT_SYNC, type SyncRead, type WriteOp } from '../../src/storage/engine.js';
import { SortedMapModel } from './conformance.js';

export interface GetSyncCheckOptions {
  /** fast-check runs. Default 30. */
  readonly runs?: number;
  /** Commands per run, at most. Default 120. */
  readonly commandsMax?: number;
  /** Value lengths up to this many bytes (long ones exercise overflow pages). Default 40. */
  readonly valueBytesMax?: number;
  /** Which answers of `getSync` the whole check must have seen at least once. Default both. */
  readonly expect?: { readonly answered: boolean; readonly declined: boolean };
  /** fast-check seed. Default fixed, so a failure reproduces. */
  readonly seed?: number;
  /** Shrink a failing case (default true). Off for slow engines: shrinking a real-disk engine with workers takes minutes. */
  readonly shrink?: boolean;
  /**
   * The engine's writes land on another thread (leveldb: the batch runs in
   * libuv's pool), so two reads in one tick may straddle a write's landing:
   * `getSync` and `get` may then disagree on a key while a write of that key
   * is in flight (either answer is right for a write not yet acknowledged),
   * never otherwise. Default false: they must always agree.
   */
  readonly writesOnAnotherThread?: boolean;
}

/** Counts of what `getSync` said over the whole check. */
export interface GetSyncCheckSummary {
  readonly answered: number;
  readonly declined: number;
}

type Command =
  | { readonly kind: 'put'; readonly key: Buffer; readonly value: Buffer }
  | { readonly kind: 'del'; readonly key: Buffer }
  | { readonly kind: 'batch'; readonly ops: WriteOp[] }
  | { readonly kind: 'read'; readonly key: Buffer }
  | { readonly kind: 'turn' }
  | { readonly kind: 'settle' };

function commands(valueBytesMax: number): fc.Arbitrary<Command> {
  // 40 keys: enough to fill tiny memtables and tables, few enough that reads hit written keys.
  const key = fc.integer({ min: 0, max: 39 }).map((n) => Buffer.from(`key-${String(n).padStart(2, '0')}`));
  const value = fc.integer({ min: 0, max: valueBytesMax }).chain((length) => fc.uint8Array({ minLength: length, maxLength: length })).map((v) => Buffer.from(v));
  const op = fc.oneof(fc.record({ type: fc.constant('put' as const), key, value }), fc.record({ type: fc.constant('del' as const), key }));
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('put' as const), key, value }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('del' as const), key }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('batch' as const), ops: fc.array(op, { minLength: 1, maxLength: 5 }) }) },
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('read' as const), key }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'turn' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'settle' as const }) },
  );
}

/**
 * `getSync(key)` and `get(key)` called in the same tick; asserts they agree
 * when `getSync` answers (unless `inFlight`: a write of the key is not
 * acknowledged yet and the engine's writes land on another thread).
 */
async function readBoth(engine: Engine, key: Buffer, seen: { answered: number; declined: number }, inFlight = false): Promise<SyncRead> {
  const now = engine.getSync(key);
  const later = engine.get(key);
  const value = await later;
  if (now === READ_NOT_SYNC) {
    seen.declined++;
  } else {
    seen.answered++;
    if (!inFlight) assert.deepEqual(now, value, `getSync(${key.toString()}) answered ${String(now)} but get gave ${String(value)}`);
  }
  return now;
}

export async function checkGetSyncAgreesWithGet(create: () => Engine, options: GetSyncCheckOptions = {}): Promise<GetSyncCheckSummary> {
  const seen = { answered: 0, declined: 0 };
  await fc.assert(
    fc.asyncProperty(fc.array(commands(options.valueBytesMax ?? 40), { minLength: 10, maxLength: options.commandsMax ?? 120, size: 'max' }), async (script) => {
      const engine = create();
      await engine.open();
      const model = new SortedMapModel();
      const pending: Array<Promise<void>> = [];
      /** Keys with a write not yet acknowledged: how many such writes. */
      const unacknowledged = new Map<string, number>();
      const write = (ops: WriteOp[]): void => {
        // The model is applied in call order: group commit keeps that order.
        model.apply(ops);
        const keys = ops.map((op) => Buffer.from(op.key).toString('latin1'));
        for (const key of keys) unacknowledged.set(key, (unacknowledged.get(key) ?? 0) + 1);
        const done = (): void => {
          for (const key of keys) {
            const left = unacknowledged.get(key)! - 1;
            if (left === 0) unacknowledged.delete(key);
            else unacknowledged.set(key, left);
          }
        };
        pending.push(engine.batch(ops).finally(done));
      };
      const inFlight = (key: Buffer): boolean => options.writesOnAnotherThread === true && unacknowledged.has(key.toString('latin1'));
      try {
        for (const command of script) {
          switch (command.kind) {
            case 'put':
              write([{ type: 'put', key: command.key, value: command.value }]);
              break;
            case 'del':
              write([{ type: 'del', key: command.key }]);
              break;
            case 'batch':
              write(command.ops);
              break;
            case 'read':
              await readBoth(engine, command.key, seen, inFlight(command.key));
              break;
            case 'turn':
              await new Promise<void>((resolve) => setImmediate(resolve));
              break;
            case 'settle':
              await Promise.all(pending.splice(0));
              for (let n = 0; n < 40; n++) {
                const key = Buffer.from(`key-${String(n).padStart(2, '0')}`);
                const now = await readBoth(engine, key, seen);
                if (now !== READ_NOT_SYNC) assert.deepEqual(now, model.get(key), `getSync(${key.toString()}) after every write was acknowledged`);
                assert.deepEqual(await engine.get(key), model.get(key), `get(${key.toString()}) after every write was acknowledged`);
              }
              break;
          }
        }
        await Promise.all(pending.splice(0));
      } finally {
        await Promise.allSettled(pending);
        await engine.close();
      }
    }),
    { numRuns: options.runs ?? 30, seed: options.seed ?? 0x5eed_6e7, endOnFailure: options.shrink === false },
  );
  const expect = options.expect ?? { answered: true, declined: true };
  if (expect.answered) assert.ok(seen.answered > 0, 'getSync never answered: the check did not exercise the synchronous path');
  if (expect.declined) assert.ok(seen.declined > 0, 'getSync never said READ_NOT_SYNC: the check did not exercise the fallback');
  return seen;
}

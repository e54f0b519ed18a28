import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ErrorCode, isImpulseError } from '../errors.js';
import { type KvCommand, type KvLimits, decodeCommand, encodeCommand, validateCommand } from './command.js';

const limits: KvLimits = { keyBytesMax: 16, valueBytesMax: 32, batchOpsMax: 4, batchBytesMax: 100, rangeLimitMax: 100 };

const key = fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => Buffer.from(b));
const condition = fc.option(fc.oneof(fc.record({ ifRevision: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }) }), fc.constant({ ifAbsent: true as const })), { nil: undefined });
const op = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key, value: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)), condition }),
  fc.record({ type: fc.constant('del' as const), key, condition: fc.option(fc.record({ ifRevision: fc.integer({ min: 1, max: 1e9 }) }), { nil: undefined }) }),
);
const session = fc.option(
  fc.integer({ min: 1, max: 1e12 }).chain((seq) =>
    fc.record({ clientId: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), seq: fc.constant(seq), ackedBelow: fc.option(fc.integer({ min: 1, max: seq }), { nil: undefined }) }),
  ),
  { nil: undefined },
);
const command = fc.record({ ops: fc.array(op, { maxLength: 4 }), session }).map((c) => strip(c) as KvCommand);

/** Drops undefined fields, as a command built by hand has them absent. */
function strip(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(strip);
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, strip(v)]));
  }
  return value;
}

function rejectsWith(run: () => unknown, code: ErrorCode): void {
  assert.throws(run, (error: unknown) => isImpulseError(error, code));
}

describe('commands', () => {
  it('decode(encode(c)) is c for every valid command (fast-check)', () => {
    fc.assert(
      fc.property(command, (original) => {
        fc.pre(validateCommandOk(original));
        assert.deepEqual(strip(decodeCommand(encodeCommand(original), limits)), strip(original));
      }),
      { numRuns: 300, seed: 0xc0de },
    );
  });

  it('turns any damaged or random bytes into IMPULSE_ERR_COMMAND_INVALID or a valid command, never anything else (fast-check)', () => {
    const damaged = fc.tuple(command, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([original, at, byte]) => {
      const bytes = Buffer.from(encodeCommand(original));
      bytes[at % bytes.length] = byte;
      return bytes;
    });
    fc.assert(
      fc.property(fc.oneof(damaged, fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.concat([Buffer.from([1]), b]))), (bytes) => {
        let decoded: KvCommand;
        try {
          decoded = decodeCommand(bytes, limits);
        } catch (error) {
          assert.ok(isImpulseError(error, 'IMPULSE_ERR_COMMAND_INVALID'), `unexpected ${String(error)}`);
          return;
        }
        validateCommand(decoded, limits);
      }),
      { numRuns: 2000, seed: 0xbad },
    );
  });

  it('refuses malformed ops, conditions and sessions with the code that names the problem', () => {
    const put = (overrides: object): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from('k'), value: Buffer.from('v'), ...overrides } as never] });
    rejectsWith(() => validateCommand(put({ key: Buffer.alloc(0) }), limits), 'IMPULSE_ERR_KEY_EMPTY');
    rejectsWith(() => validateCommand(put({ key: Buffer.alloc(17) }), limits), 'IMPULSE_ERR_KEY_TOO_LARGE');
    rejectsWith(() => validateCommand(put({ value: Buffer.alloc(33) }), limits), 'IMPULSE_ERR_VALUE_TOO_LARGE');
    rejectsWith(() => validateCommand({ ops: Array.from({ length: 5 }, () => ({ type: 'del' as const, key: Buffer.from('k') })) }, limits), 'IMPULSE_ERR_BATCH_TOO_LARGE');
    rejectsWith(() => validateCommand({ ops: Array.from({ length: 4 }, () => ({ type: 'put' as const, key: Buffer.alloc(10), value: Buffer.alloc(30) })) }, limits), 'IMPULSE_ERR_BATCH_TOO_LARGE');
    rejectsWith(() => validateCommand(put({ type: 'merge' }), limits), 'IMPULSE_ERR_BATCH_INVALID');
    for (const bad of [{ ifRevision: 0 }, { ifRevision: 1.5 }, { ifRevision: '3' }, { ifAbsent: false }, { ifRevision: 1, ifAbsent: true }, {}]) {
      rejectsWith(() => validateCommand(put({ condition: bad }), limits), 'IMPULSE_ERR_CONDITION_INVALID');
    }
    // ifAbsent on a delete is a guard (DEL over RESP counts deleted keys exactly with it), not an error.
    assert.equal(validateCommand({ ops: [{ type: 'del', key: Buffer.from('k'), condition: { ifAbsent: true } }] }, limits), 1);
    for (const bad of [{ clientId: '', seq: 1 }, { clientId: 'a b', seq: 1 }, { clientId: 'x'.repeat(65), seq: 1 }, { clientId: 'c', seq: 0 }, { clientId: 'c', seq: 2, ackedBelow: 3 }]) {
      rejectsWith(() => validateCommand({ ops: [], session: bad }, limits), 'IMPULSE_ERR_SESSION_INVALID');
    }
  });
});

function validateCommandOk(candidate: KvCommand): boolean {
  try {
    validateCommand(candidate, limits);
    return true;
  } catch {
    return false;
  }
}

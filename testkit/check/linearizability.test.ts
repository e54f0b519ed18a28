import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkLinearizability } from './search.js';
import { checkKvLinearizability, formatOperations, kvModel, type CheckResult, type KvInput, type KvOutput, type Operation } from './linearizability.js';
import { recordAtomicHistory } from './atomic-history.js';
import { SeededRandom } from '../../src/util/random.js';

// ---- helpers to write histories by hand -------------------------------------

function op(clientId: number, input: KvInput, call: number, ret: number | undefined, output?: KvOutput): Operation {
  return { clientId, input, call, return: ret, output: ret === undefined ? undefined : output };
}
const put = (c: number, key: string, value: string, call: number, ret?: number): Operation =>
  op(c, { kind: 'put', key, value }, call, ret, { kind: 'put' });
const del = (c: number, key: string, call: number, ret?: number): Operation => op(c, { kind: 'delete', key }, call, ret, { kind: 'delete' });
const get = (c: number, key: string, value: string | null, call: number, ret: number): Operation =>
  op(c, { kind: 'get', key }, call, ret, { kind: 'get', value });
const cas = (c: number, key: string, expected: string | null, value: string, ok: boolean | undefined, call: number, ret?: number): Operation =>
  op(c, { kind: 'cas', key, expected, value }, call, ok === undefined ? undefined : ret, ok === undefined ? undefined : { kind: 'cas', ok });

function assertLinearizable(history: Operation[]): CheckResult {
  const result = checkKvLinearizability(history);
  assert.equal(result.verdict, 'linearizable', `expected linearizable, got ${JSON.stringify(result)}\n${formatOperations(history)}`);
  return result;
}
function assertNotLinearizable(history: Operation[], key = 'x'): CheckResult & { verdict: 'not-linearizable' } {
  const result = checkKvLinearizability(history);
  assert.equal(result.verdict, 'not-linearizable', `expected not-linearizable, got ${JSON.stringify(result)}\n${formatOperations(history)}`);
  assert.equal(result.key, key);
  assert.ok(result.explanation.length > 0);
  return result;
}

// ---- known-good --------------------------------------------------------------

describe('known-good histories are accepted', () => {
  it('accepts the empty history and a sequential history', () => {
    assert.deepEqual(checkKvLinearizability([]), { verdict: 'linearizable', keys: 0, operations: 0, steps: 0 });
    const result = assertLinearizable([
      get(1, 'x', null, 0, 1),
      put(1, 'x', 'a', 2, 3),
      get(2, 'x', 'a', 4, 5),
      put(2, 'y', 'b', 6, 7),
      del(1, 'x', 8, 9),
      get(1, 'x', null, 10, 11),
      get(3, 'y', 'b', 12, 13),
    ]);
    assert.equal(result.verdict === 'linearizable' && result.keys, 2);
  });

  it('accepts overlapping writes read in either order', () => {
    // put a and put b overlap: both final values are valid.
    for (const last of ['a', 'b']) {
      assertLinearizable([put(1, 'x', 'a', 0, 10), put(2, 'x', 'b', 1, 9), get(3, 'x', last, 11, 12), get(1, 'x', last, 13, 14)]);
    }
    // A read overlapping a write may see the old or the new value, and a
    // read that overlaps it later may see the new one after an earlier saw old.
    assertLinearizable([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, 20), get(3, 'x', 'a', 3, 4), get(3, 'x', 'b', 5, 6), get(4, 'x', 'b', 7, 8)]);
    // Equal timestamps count as overlapping.
    assertLinearizable([put(1, 'x', 'a', 0, 5), get(2, 'x', null, 5, 6)]);
  });

  it('accepts a write with unknown outcome that takes effect much later, or never', () => {
    const base = [put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, undefined)];
    assertLinearizable([...base, get(3, 'x', 'a', 10, 11), get(3, 'x', 'a', 20, 21), get(3, 'x', 'b', 30, 31), get(4, 'x', 'b', 40, 41)]);
    assertLinearizable([...base, get(3, 'x', 'a', 10, 11), get(3, 'x', 'a', 50, 51)]);
    // An unknown delete and an unknown cas (chained) take effect later.
    assertLinearizable([
      put(1, 'x', 'a', 0, 1),
      del(2, 'x', 2),
      cas(3, 'x', null, 'c', undefined, 3),
      get(4, 'x', 'a', 10, 11),
      get(4, 'x', null, 12, 13),
      get(4, 'x', 'c', 14, 15),
    ]);
  });

  it('accepts compare-and-set successes and failures', () => {
    assertLinearizable([
      cas(1, 'x', null, 'a', true, 0, 1),
      cas(2, 'x', null, 'z', false, 2, 3),
      cas(1, 'x', 'a', 'b', true, 4, 5),
      cas(2, 'x', 'a', 'c', false, 6, 7),
      get(3, 'x', 'b', 8, 9),
    ]);
    // Two concurrent cas from the same expected value: exactly one may win.
    assertLinearizable([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'b', true, 2, 10), cas(3, 'x', 'a', 'c', false, 3, 9), get(1, 'x', 'b', 11, 12)]);
  });
});

// ---- known-bad ---------------------------------------------------------------

describe('known-bad histories are rejected', () => {
  it('rejects a stale read after a completed write', () => {
    assertNotLinearizable([put(1, 'x', 'a', 0, 1), get(2, 'x', null, 2, 3)]);
  });

  it('rejects a lost acknowledged write', () => {
    // b is acknowledged before the read starts, yet the read sees older a.
    assertNotLinearizable([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, 3), get(3, 'x', 'a', 4, 5), put(1, 'x', 'c', 6, 7)]);
  });

  it('rejects a read of a value never written', () => {
    assertNotLinearizable([put(1, 'x', 'a', 0, 10), get(2, 'x', 'zzz', 1, 9)]);
  });

  it('rejects a cas that succeeded against a value that was not there', () => {
    assertNotLinearizable([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'b', 'c', true, 2, 3)]);
    assertNotLinearizable([cas(2, 'x', 'q', 'c', true, 0, 1)]);
    // And a cas that failed although the expected value was there.
    assertNotLinearizable([put(1, 'x', 'a', 0, 1), cas(2, 'x', 'a', 'c', false, 2, 3)]);
  });

  it('rejects two readers that observe concurrent writes in contradictory orders', () => {
    assertNotLinearizable([
      put(1, 'x', 'a', 0, 100),
      put(2, 'x', 'b', 0, 100),
      get(3, 'x', 'a', 10, 11),
      get(3, 'x', 'b', 12, 13),
      get(4, 'x', 'b', 20, 21),
      get(4, 'x', 'a', 22, 23),
    ]);
  });

  it('rejects an unknown write that is seen and then un-seen', () => {
    assertNotLinearizable([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2), get(3, 'x', 'b', 10, 11), get(3, 'x', 'a', 12, 13)]);
  });

  it('reports the failing key with the fewest operations, all of its operations, and a readable explanation', () => {
    const history = [
      put(1, 'big', 'a', 0, 1),
      put(1, 'big', 'b', 2, 3),
      get(2, 'big', 'a', 4, 5),
      get(2, 'ok', null, 0, 1),
      put(3, 'small', 'a', 0, 1),
      get(3, 'small', 'never', 2, 3),
    ];
    const result = assertNotLinearizable(history, 'small');
    assert.equal(result.operations.length, 2);
    assert.ok(result.explanation.includes('1 of 2'), result.explanation);
    assert.ok(result.explanation.includes('"never"'), result.explanation);
    assert.equal(
      formatOperations(result.operations),
      ['[0, 1] client 3   put("small", "a") -> ok', '[2, 3] client 3   get("small") -> "never"'].join('\n'),
    );
  });

  it('formats unknown outcomes and sorts by call time', () => {
    const text = formatOperations([get(2, 'x', null, 12, 15), cas(1, 'x', null, 'v', undefined, 3)]);
    assert.equal(text, ['[ 3,  ?] client 1   cas("x", absent -> "v") -> unknown', '[12, 15] client 2   get("x") -> absent'].join('\n'));
  });

  it('throws on malformed histories (a bug in the recorder, not a verdict)', () => {
    assert.throws(() => checkKvLinearizability([put(1, 'x', 'a', 5, 4)]), /returned before it was called/);
    assert.throws(
      () => checkKvLinearizability([{ clientId: 1, input: { kind: 'get', key: 'x' }, call: 1, return: 2, output: { kind: 'put' } }]),
      /does not match/,
    );
    assert.throws(
      () => checkKvLinearizability([{ clientId: 1, input: { kind: 'get', key: 'x' }, call: 1, return: undefined, output: { kind: 'get', value: null } }]),
      /unknown outcome must have no output/,
    );
  });
});

// ---- histories from a truly atomic store -------------------------------------

const ATOMIC_SEEDS = Number(process.env.CHECK_ATOMIC_SEEDS ?? 300);

describe('histories recorded from a truly atomic store', () => {
  it(`accepts every history for ${ATOMIC_SEEDS} seeds`, async () => {
    for (let seed = 1; seed <= ATOMIC_SEEDS; seed++) {
      const random = new SeededRandom(seed);
      const history = await recordAtomicHistory({
        seed,
        clients: random.between(2, 8),
        operationsPerClient: random.between(5, 40),
        keys: random.between(1, 4),
        unknownProbability: random.next() * 0.3,
      });
      const result = checkKvLinearizability(history);
      assert.equal(result.verdict, 'linearizable', `seed ${seed}: ${JSON.stringify(result)}`);
    }
  });

  it('accepts atomic histories with heavy timeouts on one hot key', async () => {
    // Up to 8 clients on one key with up to 30% timeouts: the hardest shape
    // for the search (at most about 70k steps over these seeds).
    for (let seed = 1; seed <= 100; seed++) {
      const random = new SeededRandom(seed + 1_000_000);
      const history = await recordAtomicHistory({
        seed,
        clients: random.between(4, 8),
        operationsPerClient: random.between(10, 30),
        keys: 1,
        unknownProbability: random.next() * 0.3,
      });
      const result = checkKvLinearizability(history);
      assert.equal(result.verdict, 'linearizable', `seed ${seed}: ${JSON.stringify(result)}`);
    }
  });

  it('rejects mutated histories where the mutation is provably non-linearizable', async () => {
    let neverWritten = 0;
    let fromTheFuture = 0;
    let stale = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const history = await recordAtomicHistory({ seed, clients: 4, operationsPerClient: 15, keys: 2, unknownProbability: 0.1 });
      const random = new SeededRandom(seed * 7919);
      const reads = history.map((operation, index) => ({ operation, index })).filter(({ operation }) => operation.input.kind === 'get' && operation.output !== undefined);
      if (reads.length === 0) continue;
      const { operation: read, index } = reads[random.int(reads.length)]!;
      const key = read.input.key;
      const mutate = (value: string | null): Operation[] => {
        const copy = history.slice();
        copy[index] = { ...read, output: { kind: 'get', value } };
        return copy;
      };

      // 1. A value nobody wrote.
      const bad = checkKvLinearizability(mutate('never-written'));
      assert.equal(bad.verdict, 'not-linearizable', `seed ${seed}`);
      assert.equal(bad.verdict === 'not-linearizable' && bad.key, key);
      neverWritten++;

      // 2. A value (unique per history) written only by an operation invoked
      // after the read returned: a read from the future.
      const future = history.find(
        (operation) => operation.input.key === key && operation.input.kind !== 'get' && operation.input.kind !== 'delete' && operation.call > read.return!,
      );
      if (future !== undefined && (future.input.kind === 'put' || future.input.kind === 'cas')) {
        assert.equal(checkKvLinearizability(mutate(future.input.value)).verdict, 'not-linearizable', `seed ${seed} future`);
        fromTheFuture++;
      }

      // 3. A stale value: written by a completed put w1, then overwritten by a
      // completed put/delete w2 that began after w1 returned and returned
      // before the read began. Values are unique, so v can never come back.
      const writes = history.filter((operation) => operation.input.key === key && operation.return !== undefined && (operation.input.kind === 'put' || operation.input.kind === 'delete'));
      outer: for (const w1 of writes) {
        if (w1.input.kind !== 'put') continue;
        for (const w2 of writes) {
          if (w2.call > w1.return! && w2.return! < read.call) {
            assert.equal(checkKvLinearizability(mutate(w1.input.value)).verdict, 'not-linearizable', `seed ${seed} stale`);
            stale++;
            break outer;
          }
        }
      }
    }
    // The mutation kinds must actually have been exercised.
    assert.ok(neverWritten > 150, `never-written ${neverWritten}`);
    assert.ok(fromTheFuture > 50, `from the future ${fromTheFuture}`);
    assert.ok(stale > 30, `stale ${stale}`);
  });

  it('checks a 2,000-operation, 10-key, 8-client history with timeouts quickly', async () => {
    const history = await recordAtomicHistory({ seed: 42, clients: 8, operationsPerClient: 250, keys: 10, unknownProbability: 0.1 });
    assert.equal(history.length, 2000);
    const result = checkKvLinearizability(history);
    assert.equal(result.verdict, 'linearizable', JSON.stringify(result));
    assert.equal(result.verdict === 'linearizable' && result.keys, 10);

    // One stale read (a value overwritten before the read began) in the
    // middle of it is found, on the right key, well within the budget.
    const index = history.findIndex((read) => {
      if (read.input.kind !== 'get' || read.output === undefined || read.call < 1000) return false;
      return history.some(
        (w1) =>
          w1.input.kind === 'put' &&
          w1.input.key === read.input.key &&
          w1.return !== undefined &&
          history.some(
            (w2) => w2.input.key === read.input.key && w2.input.kind === 'put' && w2.return !== undefined && w2.call > w1.return! && w2.return < read.call,
          ),
      );
    });
    assert.ok(index >= 0);
    const read = history[index]!;
    const stale = history.find(
      (w1) =>
        w1.input.kind === 'put' &&
        w1.input.key === read.input.key &&
        w1.return !== undefined &&
        history.some((w2) => w2.input.key === read.input.key && w2.input.kind === 'put' && w2.return !== undefined && w2.call > w1.return! && w2.return < read.call),
    )!;
    const mutated = history.slice();
    mutated[index] = { ...read, output: { kind: 'get', value: (stale.input as { value: string }).value } };
    const rejected = checkKvLinearizability(mutated);
    assert.equal(rejected.verdict, 'not-linearizable', JSON.stringify(rejected));
    assert.equal(rejected.verdict === 'not-linearizable' && rejected.key, read.input.key);
  });
});

// ---- property: agrees with a brute-force checker -----------------------------

/**
 * Brute force, independent of the checker: try every order of the operations
 * that respects real time (a before b iff a.return < b.call), over the whole
 * history at once (no per-key split), where each unknown-outcome operation is
 * either placed somewhere or left out.
 */
function bruteForceLinearizable(history: readonly Operation[]): boolean {
  const n = history.length;
  const placed = new Array<boolean>(n).fill(false);
  const knownTotal = history.filter((operation) => operation.return !== undefined).length;
  const store = new Map<string, string>();
  const search = (knownPlaced: number): boolean => {
    if (knownPlaced === knownTotal) return true;
    for (let i = 0; i < n; i++) {
      if (placed[i]) continue;
      const candidate = history[i]!;
      // Every unplaced known operation that returned before this call must go first.
      if (history.some((other, j) => !placed[j] && j !== i && other.return !== undefined && other.return < candidate.call)) continue;
      const { input, output } = candidate;
      const before = store.get(input.key);
      let valid = true;
      switch (input.kind) {
        case 'get':
          valid = output === undefined || (output.kind === 'get' && output.value === (before ?? null));
          break;
        case 'put':
          store.set(input.key, input.value);
          break;
        case 'delete':
          store.delete(input.key);
          break;
        case 'cas': {
          const matches = (before ?? null) === input.expected;
          if (output === undefined) {
            if (matches) store.set(input.key, input.value);
          } else if (output.kind === 'cas' && output.ok) {
            valid = matches;
            if (matches) store.set(input.key, input.value);
          } else valid = !matches;
          break;
        }
      }
      if (valid) {
        placed[i] = true;
        if (search(knownPlaced + (candidate.return === undefined ? 0 : 1))) return true;
        placed[i] = false;
      }
      if (before === undefined) store.delete(input.key);
      else store.set(input.key, before);
    }
    return false;
  };
  return search(0);
}

interface OperationSpec {
  client: number;
  kind: 'get' | 'put' | 'delete' | 'cas';
  key: string;
  value: string;
  expected: string | null;
  call: number;
  duration: number;
  pointFraction: number;
  unknown: boolean;
  appliedIfUnknown: boolean;
  corrupt: boolean;
  corruptValue: string | null;
}

const valueArbitrary = fc.constantFrom('1', '2', '3');
const specArbitrary: fc.Arbitrary<OperationSpec> = fc.record({
  client: fc.integer({ min: 0, max: 3 }),
  kind: fc.constantFrom('get', 'get', 'put', 'delete', 'cas'),
  key: fc.constantFrom('a', 'b'),
  value: valueArbitrary,
  expected: fc.option(valueArbitrary, { nil: null }),
  call: fc.integer({ min: 0, max: 20 }),
  duration: fc.integer({ min: 0, max: 8 }),
  pointFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  unknown: fc.boolean().chain((b) => (b ? fc.boolean() : fc.constant(false))), // ~25%
  appliedIfUnknown: fc.boolean(),
  corrupt: fc.integer({ min: 0, max: 9 }).map((roll) => roll === 0), // 10% per operation
  corruptValue: fc.option(valueArbitrary, { nil: null }),
});

/**
 * Builds a history by executing the specs at random linearization points
 * inside their windows (so it is linearizable), then corrupting some outputs
 * (so it often is not).
 */
function buildHistory(specs: readonly OperationSpec[]): Operation[] {
  const order = specs
    .map((spec, index) => ({ spec, index, point: spec.call + spec.pointFraction * spec.duration }))
    .sort((a, b) => a.point - b.point || a.index - b.index);
  const outputs = new Map<number, KvOutput>();
  const store = new Map<string, string>();
  for (const { spec, index } of order) {
    if (spec.unknown && !spec.appliedIfUnknown) continue;
    const current = store.get(spec.key) ?? null;
    switch (spec.kind) {
      case 'get':
        outputs.set(index, { kind: 'get', value: spec.corrupt ? spec.corruptValue : current });
        break;
      case 'put':
        store.set(spec.key, spec.value);
        outputs.set(index, { kind: 'put' });
        break;
      case 'delete':
        store.delete(spec.key);
        outputs.set(index, { kind: 'delete' });
        break;
      case 'cas': {
        const ok = current === spec.expected;
        if (ok) store.set(spec.key, spec.value);
        outputs.set(index, { kind: 'cas', ok: spec.corrupt ? !ok : ok });
        break;
      }
    }
  }
  return specs.map((spec, index) => {
    const input: KvInput =
      spec.kind === 'get'
        ? { kind: 'get', key: spec.key }
        : spec.kind === 'put'
          ? { kind: 'put', key: spec.key, value: spec.value }
          : spec.kind === 'delete'
            ? { kind: 'delete', key: spec.key }
            : { kind: 'cas', key: spec.key, expected: spec.expected, value: spec.value };
    if (spec.unknown) return { clientId: spec.client, input, call: spec.call, return: undefined, output: undefined };
    return { clientId: spec.client, input, call: spec.call, return: spec.call + spec.duration, output: outputs.get(index)! };
  });
}

describe('property: agrees with brute force on small histories', () => {
  it('gives the same verdict as trying every real-time-respecting order', () => {
    const verdicts = { linearizable: 0, 'not-linearizable': 0 };
    fc.assert(
      fc.property(fc.array(specArbitrary, { minLength: 0, maxLength: 7 }), (specs) => {
        const history = buildHistory(specs);
        const expected = bruteForceLinearizable(history);
        const result = checkKvLinearizability(history);
        assert.notEqual(result.verdict, 'unknown');
        verdicts[result.verdict as 'linearizable' | 'not-linearizable']++;
        assert.equal(result.verdict === 'linearizable', expected, `brute force says ${expected}\n${formatOperations(history)}`);
      }),
      { numRuns: Number(process.env.CHECK_PROPERTY_RUNS ?? 3000), seed: Number(process.env.CHECK_PROPERTY_SEED ?? 20260524) },
    );
    // Both verdicts must be well represented or the property proves little.
    assert.ok(verdicts.linearizable > 300 && verdicts['not-linearizable'] > 300, JSON.stringify(verdicts));
  });

  it('agrees with the memo cache disabled (the cache is only an optimization)', () => {
    fc.assert(
      fc.property(fc.array(specArbitrary, { minLength: 0, maxLength: 7 }), (specs) => {
        const history = buildHistory(specs);
        const result = checkLinearizability(kvModel, history, { cacheBytesMax: 0 });
        assert.equal(result.verdict === 'linearizable', bruteForceLinearizable(history), formatOperations(history));
      }),
      { numRuns: 500, seed: 99 },
    );
  });

  it('agrees on histories dense in timeouts and compare-and-set on one key', () => {
    const denseSpec = specArbitrary.map((spec) => ({ ...spec, key: 'a', kind: spec.kind === 'get' ? spec.kind : ('cas' as const) }));
    fc.assert(
      fc.property(fc.array(denseSpec, { minLength: 1, maxLength: 8 }), (specs) => {
        const history = buildHistory(specs);
        const result = checkKvLinearizability(history);
        assert.equal(result.verdict === 'linearizable', bruteForceLinearizable(history), formatOperations(history));
      }),
      { numRuns: Number(process.env.CHECK_PROPERTY_RUNS ?? 3000), seed: Number(process.env.CHECK_PROPERTY_SEED ?? 7) },
    );
  });
});

/**
 * The plain search (Porcupine's semantics: no dropping of timed-out
 * operations, no lazy placement, retirement, symmetry or forced reads) as a
 * reference for the optimized one on histories too large for brute force.
 */
const plainKvModel: typeof kvModel = {
  ...kvModel,
  lazyUnknownPlacement: undefined,
  inputKey: undefined,
  isReadOnly: undefined,
  partition(history) {
    const byKey = new Map<string, Operation[]>();
    for (const operation of history as Operation[]) byKey.set(operation.input.key, [...(byKey.get(operation.input.key) ?? []), operation]);
    return [...byKey].map(([label, operations]) => ({ label, operations }));
  },
};

describe('property: the search reductions do not change verdicts', () => {
  it('agrees with the plain search on medium histories dense in timeouts', () => {
    // Fewer corrupted outputs than the small-history generator, so that both
    // verdicts stay common at this length.
    const mediumSpec = specArbitrary.map((spec) => ({ ...spec, key: 'a', call: spec.call * 3, corrupt: spec.corrupt && spec.appliedIfUnknown }));
    const verdicts = { linearizable: 0, 'not-linearizable': 0 };
    fc.assert(
      fc.property(fc.array(mediumSpec, { minLength: 10, maxLength: 30 }), (specs) => {
        const history = buildHistory(specs);
        const optimized = checkLinearizability(kvModel, history, { stepBudget: 200_000 });
        const plain = checkLinearizability(plainKvModel, history, { stepBudget: 200_000, reduceStatePreserving: false });
        if (optimized.verdict === 'unknown' || plain.verdict === 'unknown') return;
        verdicts[optimized.verdict]++;
        assert.equal(optimized.verdict, plain.verdict, formatOperations(history));
      }),
      { numRuns: Number(process.env.CHECK_PROPERTY_RUNS ?? 3000) / 5, seed: Number(process.env.CHECK_PROPERTY_SEED ?? 11) },
    );
    const runs = Number(process.env.CHECK_PROPERTY_RUNS ?? 3000) / 5;
    assert.ok(verdicts.linearizable > runs / 10 && verdicts['not-linearizable'] > runs / 10, JSON.stringify(verdicts));
  });
});

// ---- budget and determinism ----------------------------------------------------

/**
 * Many writes all overlapping one another, then a read of a value nobody
 * wrote: every order of the writes has to be ruled out, and the memo holds
 * one entry per subset of writes, so the search is exponential.
 */
function pathologicalHistory(writers: number): Operation[] {
  const history: Operation[] = [];
  for (let i = 0; i < writers; i++) history.push(put(i, 'x', `v${i}`, 0, 100));
  for (let i = 0; i < writers; i++) history.push(get(100 + i, 'x', `v${i}`, 1, 99));
  history.push(get(999, 'x', 'never', 101, 102));
  return history;
}

describe('budget and determinism', () => {
  it('answers unknown instead of hanging on a pathological history', () => {
    const started = process.hrtime.bigint();
    const small = checkKvLinearizability(pathologicalHistory(30), { stepBudget: 50_000 });
    assert.equal(small.verdict, 'unknown');
    assert.equal(small.steps, 50_000);
    assert.ok(small.verdict === 'unknown' && small.reason.includes('"x"'), JSON.stringify(small));
    const byDefault = checkKvLinearizability(pathologicalHistory(30));
    assert.equal(byDefault.verdict, 'unknown');
    assert.equal(byDefault.steps, 2_000_000);
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(elapsedMs < 30_000, `took ${elapsedMs} ms`);
  });

  it('finds the failure in a small pathological history within the budget', () => {
    const result = checkKvLinearizability(pathologicalHistory(6));
    assert.equal(result.verdict, 'not-linearizable');
  });

  it('a failure in a checked key wins over a key that exhausts the budget later', () => {
    const history = [...pathologicalHistory(30), put(1, 'y', 'a', 0, 1), get(2, 'y', 'b', 2, 3)];
    const result = checkKvLinearizability(history, { stepBudget: 10_000 });
    assert.equal(result.verdict, 'not-linearizable');
    assert.equal(result.verdict === 'not-linearizable' && result.key, 'y');
  });

  it('is deterministic: the same history gives the same verdict and step count', async () => {
    const history = await recordAtomicHistory({ seed: 5, clients: 6, operationsPerClient: 60, keys: 3, unknownProbability: 0.15 });
    const first = checkKvLinearizability(history);
    const shuffled = history.slice().reverse();
    assert.deepEqual(checkKvLinearizability(history), first);
    assert.equal(checkKvLinearizability(shuffled).verdict, first.verdict);
    assert.deepEqual(await recordAtomicHistory({ seed: 5, clients: 6, operationsPerClient: 60, keys: 3, unknownProbability: 0.15 }), history);
  });
});

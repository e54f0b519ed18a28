import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import { decodeContext, decodeSiblingSet, encodeContext, encodeSiblingSet } from './codec.js';
import { type SiblingSet, type VersionVector, contextOf, merge, resolveLastWriter, update } from './dvv.js';
import { HybridClock } from './replica.js';

/**
 * The model: every write is an event with a unique id; a replica KNOWS a set of
 * events (its own writes and everything merged into it); a write supersedes
 * exactly the events its context knew; a replica's live events are the known
 * events no known event supersedes. The DVV implementation must show exactly
 * the live events of the model, after every step.
 */
type Step =
  | { kind: 'write'; replica: number; context: { from: 'blind' } | { from: 'read'; replica: number } | { from: 'saved'; index: number }; del: boolean }
  | { kind: 'read'; replica: number }
  | { kind: 'sync'; from: number; to: number };

const REPLICAS = 3;
const replica = fc.integer({ min: 0, max: REPLICAS - 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('write' as const),
    replica,
    context: fc.oneof(fc.constant({ from: 'blind' as const }), fc.record({ from: fc.constant('read' as const), replica }), fc.record({ from: fc.constant('saved' as const), index: fc.nat(20) })),
    del: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('read' as const), replica }),
  fc.record({ kind: fc.constant('sync' as const), from: replica, to: replica }),
);

interface ModelReplica {
  known: Set<number>;
}

/** Event id → the events its writer had seen. */
type Pasts = Map<number, Set<number>>;

function modelLive(known: Set<number>, pasts: Pasts): number[] {
  return [...known].filter((event) => ![...known].some((other) => pasts.get(other)!.has(event))).sort((a, b) => a - b);
}

/** Events shown by a set: the timestamp carries the event id in this test. */
function implLive(set: SiblingSet): number[] {
  return set.map((sibling) => sibling.timestamp).sort((a, b) => a - b);
}

/** Runs `steps` on the implementation and the model, comparing after each; returns the replicas' sets. */
function run(steps: readonly Step[]): SiblingSet[] {
  const impl: SiblingSet[] = Array.from({ length: REPLICAS }, () => []);
  const model: ModelReplica[] = Array.from({ length: REPLICAS }, () => ({ known: new Set<number>() }));
  const pasts: Pasts = new Map();
  const saved: { context: VersionVector; known: Set<number> }[] = [];
  let nextEvent = 1;
  for (const s of steps) {
    if (s.kind === 'read') {
      saved.push({ context: contextOf(impl[s.replica]!), known: new Set(model[s.replica]!.known) });
    } else if (s.kind === 'sync') {
      impl[s.to] = merge(impl[s.to]!, impl[s.from]!);
      for (const event of model[s.from]!.known) model[s.to]!.known.add(event);
    } else {
      let context: VersionVector = [];
      let seen = new Set<number>();
      if (s.context.from === 'read') {
        context = contextOf(impl[s.context.replica]!);
        seen = new Set(model[s.context.replica]!.known);
      } else if (s.context.from === 'saved' && saved.length > 0) {
        const chosen = saved[s.context.index % saved.length]!;
        context = chosen.context;
        seen = chosen.known;
      }
      const event = nextEvent++;
      // Causality is transitive: what the writer saw includes what those writes had seen.
      const closure = new Set(seen);
      for (const earlier of seen) for (const past of pasts.get(earlier)!) closure.add(past);
      pasts.set(event, closure);
      impl[s.replica] = update(impl[s.replica]!, context, s.replica + 1, s.del ? null : Buffer.from(String(event)), event);
      model[s.replica]!.known.add(event);
    }
    for (let index = 0; index < REPLICAS; index++) {
      assert.deepEqual(implLive(impl[index]!), modelLive(model[index]!.known, pasts), `replica ${index} after ${JSON.stringify(s)}`);
    }
  }
  return impl;
}

const sibling = fc.record({
  dot: fc.record({ node: fc.integer({ min: 1, max: 4 }), counter: fc.integer({ min: 1, max: 6 }) }),
  context: fc.uniqueArray(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 })), { selector: ([node]) => node, maxLength: 4 }).map((vv) => vv.sort((a, b) => a[0] - b[0]) as VersionVector),
  value: fc.option(fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)), { nil: null }),
  timestamp: fc.nat(1000),
});
// Arbitrary sets normalized by a merge with the empty set (sorted, no obsolete siblings, one sibling per dot).
const set = fc.array(sibling, { maxLength: 5 }).map((siblings) => siblings.reduce<SiblingSet>((acc, s) => merge(acc, [{ dot: { ...s.dot }, context: s.context, value: s.value, timestamp: s.timestamp }]), []));

describe('dotted version vectors against a model', () => {
  it('every replica shows exactly the model\'s live writes: nothing acknowledged lost, concurrent writes kept as siblings, a context supersedes exactly what it saw (fast-check)', () => {
    fc.assert(fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
      run(steps);
    }), { numRuns: 400 });
  });

  it('two blind writes through the same coordinator are both kept (a per-key version vector would lose one)', () => {
    let state = update([], [], 1, Buffer.from('a'), 1);
    state = update(state, [], 1, Buffer.from('b'), 2);
    assert.deepEqual(implLive(state), [1, 2]);
    const resolved = update(state, contextOf(state), 1, Buffer.from('c'), 3);
    assert.deepEqual(implLive(resolved), [3]);
  });

  it('merge is commutative, associative and idempotent on states real histories produce (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
        const [a, b, c] = run(steps) as [SiblingSet, SiblingSet, SiblingSet];
        assert.deepEqual(merge(a, b), merge(b, a));
        assert.deepEqual(merge(merge(a, b), c), merge(a, merge(b, c)));
        assert.deepEqual(merge(a, a), a);
      }),
    );
  });

  it('last-writer-wins keeps one sibling, the highest timestamp, and the losers stay superseded when they meet it again', () => {
    let a = update([], [], 1, Buffer.from('old'), 10);
    let b = update([], [], 2, Buffer.from('new'), 20);
    const resolved = resolveLastWriter(merge(a, b));
    assert.equal(resolved.length, 1);
    assert.equal(resolved[0]!.value!.toString(), 'new');
    a = merge(a, resolved);
    b = merge(resolved, b);
    assert.deepEqual(a, resolved);
    assert.deepEqual(b, resolved);
  });
});

describe('leaderless codec', () => {
  it('decode(encode(set)) is the set, and the encoding is canonical (fast-check)', () => {
    fc.assert(
      fc.property(set, (original) => {
        const bytes = encodeSiblingSet(original);
        const decoded = decodeSiblingSet(bytes, 0, 'test', 'IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', 1024);
        assert.deepEqual(decoded, original);
        assert.deepEqual(encodeSiblingSet(decoded), bytes);
        assert.deepEqual(decodeContext(encodeContext(contextOf(original))), contextOf(original));
      }),
    );
  });

  it('damaged or random bytes are refused with the code asked for, never a crash or a wrong set (fast-check)', () => {
    fc.assert(
      fc.property(set, fc.nat(), fc.uint8Array({ maxLength: 40 }), (original, at, noise) => {
        const bytes = encodeSiblingSet(original);
        const damaged = Buffer.concat([bytes.subarray(0, at % (bytes.length + 1)), noise]);
        try {
          const decoded = decodeSiblingSet(damaged, 0, 'test', 'IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID', 1024);
          // Whatever decodes is a canonical set: it re-encodes to the same bytes.
          assert.deepEqual(encodeSiblingSet(decoded), damaged);
        } catch (error) {
          assert.ok(isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID'), String(error));
        }
      }),
    );
  });

  it('a context a client made up is refused with IMPULSE_ERR_CONTEXT_INVALID', () => {
    for (const text of ['', 'c1', 'c2.AQ', 'c1.!!', 'c1.AgIBAQE', `c1.${'A'.repeat(5000)}`, 'c1.AQAB']) {
      assert.throws(() => decodeContext(text), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONTEXT_INVALID'), text);
    }
  });
});

describe('hybrid logical clock', () => {
  it('is strictly increasing, follows timestamps it observes, and ignores ones far in the future', () => {
    let wallMs = 1000;
    const clock = new HybridClock(() => wallMs, 60_000);
    const first = clock.next();
    assert.equal(first, 1_000_000);
    assert.equal(clock.next(), first + 1, 'same wall time: still increasing');
    clock.observe(5_000_000);
    assert.equal(clock.next(), 5_000_001, 'never behind what it saw');
    clock.observe(10_000_000_000);
    assert.equal(clock.next(), 5_000_002, 'a timestamp 10,000 s ahead is not adopted');
    wallMs = 2000;
    assert.equal(clock.next(), 5_000_003);
  });
});

/**
 * Records histories from a store that is linearizable by construction: many
 * async clients run concurrently against one in-memory map, and each
 * operation is applied atomically (synchronously, between two awaits), so its
 * linearization point lies inside its [call, return] window. Used by the
 * checker's tests (every such history must be accepted) and its benchmark.
 *
 * All interleaving comes from a seeded PRNG choosing how many microtask
 * yields each client waits, so a seed replays the same history exactly.
 */
import { SeededRandom, type Random } from '../../src/util/random.js';
import type { KvInput, KvOutput, Operation } from './linearizability.js';

/** Shape of the workload. All counts are positive integers. */
export interface AtomicHistoryOptions {
  seed: number;
  clients: number;
  operationsPerClient: number;
  keys: number;
  /** Probability an operation times out (its outcome is recorded as unknown). Default 0.05. */
  unknownProbability?: number;
  /** Maximum microtask yields before and after applying an operation. Default 6. */
  delayYieldsMax?: number;
}

/**
 * Runs the workload and returns its history. Values written are unique per
 * history (`c<client>.<n>`), so a read identifies the write it saw. An
 * operation that times out is, with probability 1/2, still applied later by
 * a detached task (possibly after its client issued further operations), and
 * otherwise never applied.
 */
export async function recordAtomicHistory(options: AtomicHistoryOptions): Promise<Operation[]> {
  const random = new SeededRandom(options.seed);
  const unknownProbability = options.unknownProbability ?? 0.05;
  const delayYieldsMax = options.delayYieldsMax ?? 6;
  const store = new Map<string, string>();
  const writtenByKey = new Map<string, string[]>();
  const history: Operation[] = [];
  const detached: Promise<void>[] = [];
  let now = 0;

  const apply = (input: KvInput): KvOutput => {
    switch (input.kind) {
      case 'get':
        return { kind: 'get', value: store.get(input.key) ?? null };
      case 'put':
        store.set(input.key, input.value);
        return { kind: 'put' };
      case 'delete':
        store.delete(input.key);
        return { kind: 'delete' };
      case 'cas': {
        const current = store.get(input.key) ?? null;
        if (current !== input.expected) return { kind: 'cas', ok: false };
        store.set(input.key, input.value);
        return { kind: 'cas', ok: true };
      }
    }
  };

  const pause = async (clientRandom: Random, yieldsMax: number): Promise<void> => {
    const yields = clientRandom.int(yieldsMax + 1);
    for (let i = 0; i < yields; i++) await Promise.resolve();
  };

  const runClient = async (clientId: number, clientRandom: Random): Promise<void> => {
    for (let n = 0; n < options.operationsPerClient; n++) {
      const key = `k${clientRandom.int(options.keys)}`;
      const input = randomInput(clientRandom, key, `c${clientId}.${n}`, writtenByKey);
      if (input.kind === 'put' || input.kind === 'cas') {
        let written = writtenByKey.get(key);
        if (written === undefined) writtenByKey.set(key, (written = []));
        written.push(input.value);
      }
      const call = now++;
      await pause(clientRandom, delayYieldsMax);
      if (clientRandom.chance(unknownProbability)) {
        history.push({ clientId, input, call, return: undefined, output: undefined });
        if (clientRandom.chance(0.5)) {
          const lateRandom = clientRandom.fork();
          detached.push(
            (async () => {
              await pause(lateRandom, delayYieldsMax * 20);
              apply(input);
            })(),
          );
        }
        continue;
      }
      const output = apply(input);
      await pause(clientRandom, delayYieldsMax);
      history.push({ clientId, input, call, return: now++, output });
    }
  };

  const clients: Promise<void>[] = [];
  for (let clientId = 0; clientId < options.clients; clientId++) clients.push(runClient(clientId, random.fork()));
  await Promise.all(clients);
  await Promise.all(detached);
  return history;
}

function randomInput(random: Random, key: string, freshValue: string, writtenByKey: Map<string, string[]>): KvInput {
  const roll = random.int(100);
  if (roll < 40) return { kind: 'get', key };
  if (roll < 70) return { kind: 'put', key, value: freshValue };
  if (roll < 80) return { kind: 'delete', key };
  // Compare-and-set against a value this key really had (or absent), so some succeed.
  const written = writtenByKey.get(key) ?? [];
  const expected = written.length === 0 || random.chance(0.2) ? null : written[written.length - 1 - random.int(Math.min(3, written.length))]!;
  return { kind: 'cas', key, expected, value: freshValue };
}

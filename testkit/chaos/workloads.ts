/**
 * The workloads of a chaos run (Jepsen's register, set and bank), each a
 * step function that one worker calls in a loop, the final reads that close
 * the history once the cluster has healed, and the checks that judge it
 * (checks.ts).
 *
 *   register  get, put and conditional put (cas) on a few hot keys r/0..r/K-1,
 *             every written value unique ("<process>-<n>"); cas expects the
 *             value the worker last read (If-Match of its revision; values are
 *             unique, so "revision r" and "value v" name the same state).
 *   set       adds unique elements (a put of s/<element>); the set is read
 *             (a scan of s/) at the end.
 *   bank      transfers between accounts b/0..b/A-1 as conditional batches
 *             (both balances read with their revisions, both written If-Match),
 *             and reads of every balance (one linearizable scan); the total
 *             must never change.
 *
 * Leaderless mode has no conditions and no batches, so its register is causal
 * and it has no bank:
 *   register  get (every sibling and the causal context) and put on the same
 *             hot keys; a put sends the context of the worker's last read of
 *             the key (80 %; else it is blind) and records the values that read
 *             returned as `supersedes`: exactly what the write replaces
 *             (causal-checks.ts judges it).
 *   set       the same adds, as blind leaderless writes.
 */
import { ImpulseClient, type Versions } from '../../src/client/client.js';
import type { Random } from '../../src/util/random.js';
import { type HistoryRecorder, type OpKind, classifyError } from './history.js';

export const WORKLOAD_NAMES = ['register', 'set', 'bank'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export const REGISTER_KEYS = 5;
export const BANK_ACCOUNTS = 5;
export const BANK_INITIAL_BALANCE = 100;

/** One worker: a loop of operations against one member; a new process (client session) after an unknown write. */
export class Worker {
  process: number;
  client: ImpulseClient;
  private writes = 0;
  /** The value and revision this worker last read per key (register: what its cas expects). */
  readonly lastRead = new Map<string, { value: string | null; revision: number | undefined }>();
  /** Leaderless register: the values and the causal context of this worker's last read per key (what its next put supersedes). */
  readonly lastVersions = new Map<string, { values: string[]; context: string }>();

  constructor(
    readonly index: number,
    readonly node: number,
    private readonly endpoint: string,
    readonly random: Random,
    private readonly recorder: HistoryRecorder,
    private readonly nextProcess: () => number,
    private readonly timeoutMs: number,
  ) {
    this.process = nextProcess();
    this.client = this.newClient();
  }

  /** A value no other write of the run has: "<process>-<n>". */
  uniqueValue(): string {
    return `${this.process}-${++this.writes}`;
  }

  /** Runs `request`, records it, and returns what it gave (undefined when it failed or is unknown). */
  async invoke<T>(op: OpKind, key: string, value: unknown, expected: string | null | undefined, request: () => Promise<T>, outOf: (result: T) => unknown, supersedes?: readonly string[]): Promise<T | undefined> {
    const isWrite = op !== 'get' && op !== 'read';
    const call = this.recorder.now();
    const base = { process: this.process, op, key, value, ...(expected !== undefined ? { expected } : {}), ...(supersedes !== undefined ? { supersedes } : {}), call, node: this.node };
    try {
      const result = await request();
      this.recorder.record({ ...base, out: outOf(result), ret: this.recorder.now(), status: 'ok' });
      return result;
    } catch (error) {
      const { status, code } = classifyError(error, isWrite);
      this.recorder.record({ ...base, out: op === 'cas' ? false : null, ret: status === 'unknown' ? null : this.recorder.now(), status, error: code });
      if (status === 'unknown') this.retire();
      return undefined;
    }
  }

  close(): void {
    this.client.close();
  }

  /** Jepsen's rule: a process with a write in doubt is done; the worker goes on as a new one. */
  private retire(): void {
    this.client.close();
    this.process = this.nextProcess();
    this.writes = 0;
    this.lastRead.clear();
    this.lastVersions.clear();
    this.client = this.newClient();
  }

  private newClient(): ImpulseClient {
    return new ImpulseClient({ endpoint: this.endpoint, timeoutMs: this.timeoutMs, writeRetriesMax: 0, connectionsMax: 2, clientId: `chaos-${this.process}` });
  }
}

export interface Workload {
  readonly name: WorkloadName;
  /** Before the workers start (e.g. the bank's opening balances). */
  setup(client: ImpulseClient): Promise<void>;
  /** One operation of `worker`. */
  step(worker: Worker): Promise<void>;
  /** After the final heal: reads that close the history, through `worker`. */
  finalReads(worker: Worker): Promise<void>;
}

/** The workloads a replication mode runs (leaderless: no bank, which needs conditional batches). */
export function workloadNames(leaderless: boolean): readonly WorkloadName[] {
  return leaderless ? ['register', 'set'] : WORKLOAD_NAMES;
}

export function createWorkload(name: WorkloadName, leaderless = false): Workload {
  switch (name) {
    case 'register':
      return leaderless ? causalRegisterWorkload : registerWorkload;
    case 'set':
      return leaderless ? causalSetWorkload : setWorkload;
    case 'bank':
      if (leaderless) throw new Error('the bank workload needs conditional batches, which leaderless mode does not offer');
      return bankWorkload;
  }
}

const registerKey = (i: number): string => `r/${i}`;

const registerWorkload: Workload = {
  name: 'register',
  async setup() {},
  async step(worker) {
    const key = registerKey(worker.random.int(REGISTER_KEYS));
    const roll = worker.random.next();
    if (roll < 0.5) return readRegister(worker, key);
    const value = worker.uniqueValue();
    if (roll < 0.8) {
      await worker.invoke('put', key, value, undefined, () => worker.client.put(key, value), () => null);
      return;
    }
    const last = worker.lastRead.get(key);
    if (last === undefined) return readRegister(worker, key);
    const conditions = last.revision === undefined ? { ifAbsent: true } : { ifRevision: last.revision };
    await worker.invoke('cas', key, value, last.value, () => worker.client.put(key, value, conditions), () => true);
  },
  async finalReads(worker) {
    for (let i = 0; i < REGISTER_KEYS; i++) await readRegister(worker, registerKey(i));
  },
};

async function readRegister(worker: Worker, key: string): Promise<void> {
  const result = await worker.invoke('get', key, null, undefined, async () => ({ found: await worker.client.getWithRevision(key) }), ({ found }) => found?.value.toString('utf8') ?? null);
  if (result !== undefined) worker.lastRead.set(key, { value: result.found?.value.toString('utf8') ?? null, revision: result.found?.revision });
}

/** Leaderless register: a write with the context of the worker's last read supersedes what that read returned, and nothing else. */
const causalRegisterWorkload: Workload = {
  name: 'register',
  async setup() {},
  async step(worker) {
    const key = registerKey(worker.random.int(REGISTER_KEYS));
    if (worker.random.next() < 0.5) return readVersions(worker, key);
    const value = worker.uniqueValue();
    const seen = worker.random.next() < 0.8 ? worker.lastVersions.get(key) : undefined;
    // The context a write returns may cover siblings this worker never read: the next write of the key reads first (or is blind).
    worker.lastVersions.delete(key);
    const options = seen !== undefined ? { context: seen.context } : {};
    await worker.invoke('put', key, value, undefined, () => worker.client.putVersion(key, value, options), () => null, seen?.values ?? []);
  },
  async finalReads(worker) {
    for (let i = 0; i < REGISTER_KEYS; i++) await readVersions(worker, registerKey(i));
  },
};

/** A leaderless read: `out` is every sibling's value, sorted ([] when absent). */
async function readVersions(worker: Worker, key: string): Promise<void> {
  const values = (versions: Versions): string[] => versions.values.map((value) => value.toString('utf8')).sort();
  const result = await worker.invoke('get', key, null, undefined, () => worker.client.getVersions(key), values);
  if (result !== undefined) worker.lastVersions.set(key, { values: values(result), context: result.context });
}

/** The set: each add a write of a key of its own (`add` is a plain put, or in leaderless mode a blind write: no siblings, every key is written once). */
function setWorkloadWith(add: (client: ImpulseClient, key: string, element: string) => Promise<unknown>): Workload {
  return {
    name: 'set',
    async setup() {},
    async step(worker) {
      const element = worker.uniqueValue();
      await worker.invoke('add', `s/${element}`, element, undefined, () => add(worker.client, `s/${element}`, element), () => null);
    },
    finalReads: readSet,
  };
}

const setWorkload = setWorkloadWith((client, key, element) => client.put(key, element));
const causalSetWorkload = setWorkloadWith((client, key, element) => client.putVersion(key, element));

async function readSet(worker: Worker): Promise<void> {
  // After the final heal nothing writes any more, so a read page by page sees one state.
  await worker.invoke('read', 's/', null, undefined, async () => {
    const elements: string[] = [];
    for await (const item of worker.client.scanAll({ prefix: 's/' })) elements.push(item.value.toString('utf8'));
    return elements;
  }, (elements) => elements);
}

const accountKey = (i: number): string => `b/${i}`;

const bankWorkload: Workload = {
  name: 'bank',
  async setup(client) {
    const ops = Array.from({ length: BANK_ACCOUNTS }, (_, i) => ({ op: 'put' as const, key: accountKey(i), value: String(BANK_INITIAL_BALANCE), ifAbsent: true }));
    await client.batch(ops);
  },
  async step(worker) {
    if (worker.random.next() < 0.3) return readBank(worker);
    const from = worker.random.int(BANK_ACCOUNTS);
    const to = (from + 1 + worker.random.int(BANK_ACCOUNTS - 1)) % BANK_ACCOUNTS;
    const [a, b] = await Promise.all([worker.client.getWithRevision(accountKey(from)), worker.client.getWithRevision(accountKey(to))]).catch(() => [undefined, undefined]);
    if (a === undefined || b === undefined) return; // the reads before a transfer are not part of the history: the batch's conditions carry what they saw
    const amount = 1 + worker.random.int(5);
    const balanceFrom = Number(a.value.toString('utf8'));
    const balanceTo = Number(b.value.toString('utf8'));
    if (balanceFrom < amount) return;
    const value = { from, to, amount };
    await worker.invoke('transfer', `${accountKey(from)}>${accountKey(to)}`, value, undefined, () =>
      worker.client.batch([
        { op: 'put', key: accountKey(from), value: String(balanceFrom - amount), ifRevision: a.revision },
        { op: 'put', key: accountKey(to), value: String(balanceTo + amount), ifRevision: b.revision },
      ]), () => null);
  },
  finalReads: readBank,
};

async function readBank(worker: Worker): Promise<void> {
  // One page, so one linearizable read of one state: the accounts fit in it.
  await worker.invoke('read', 'b/', null, undefined, () => worker.client.scan({ prefix: 'b/', limit: BANK_ACCOUNTS + 1 }), (page) =>
    Object.fromEntries(page.items.map((item) => [item.key.toString('utf8'), Number(item.value.toString('utf8'))])));
}


/**
 * Where a lone request's time goes: one keep-alive connection, one request at
 * a time, server and client in ONE process (as the bare reference was
 * measured), so the bare node:http round trip and impulse's can be compared
 * request for request in the same run.
 *
 *   npx tsc -p . && flock /tmp/impulse-bench.lock node dist/bench/seq-latency.js [--n 2000] [--runs 3]
 *       [--engines memory,btree] [--sync none,fsync] [--references true] [--out bench/results/seq-latency.md]
 *
 * Three parts, each the median of `--runs` runs with the spread (min–max):
 *
 *   1. Round trip, µs per request (wall) and CPU µs per request (process CPU,
 *      server + client, / requests: far less sensitive to other load on a
 *      shared machine), for PUT, GET (present), DELETE, GET (missing):
 *        bare      a node:http server holding a Map, a bare node:http client (the reference)
 *        client    the same bare server, with ImpulseClient (what src/client adds)
 *        impulse   ImpulseServer on LocalKvService, per engine (sync none; btree also fsync), bare client
 *   2. The write path without HTTP, µs per write (wall) and CPU µs, one at a
 *      time, per engine: `engine.put` alone; `KvStateMachine.applyBatch` of
 *      one command; `LocalKvService.write` of one command; the same with a
 *      client session (what ImpulseClient sends with every write).
 *   3. Stages of an impulse request, median µs between marks taken by
 *      bench-only wrappers (nothing in src/ is changed for them): client send →
 *      'request' event (node:http parsed the headers) → handler start →
 *      service.write → applyBatch → engine.batch → engine done → write settled
 *      → res.end() → 'finish' (handed to the socket) → client 'response' →
 *      client 'end'. A stage a request never reaches (a GET has no engine.batch)
 *      is left out. The wrappers cost a little themselves: compare totals with
 *      part 1, not with each other.
 *
 * Keys `key-<i>`, value "bar", as bench/sequential.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { ImpulseServer } from '../src/api/server.js';
import { ImpulseClient } from '../src/client/client.js';
import type { KvOp } from '../src/kv/command.js';
import type { KvStateMachine } from '../src/kv/state-machine.js';
import type { LocalKvService } from '../src/service/local-kv-service.js';
import { openLocalKvService } from '../src/service/open-local.js';
import { DEFAULT_LIMITS, type SyncMode } from '../src/storage/engine.js';
import { bareClient } from './lib/bare-client.js';
import { bareKvHandler } from './lib/bare-kv-handler.js';
import { flag, formatNumber, loadLine, machineLine, median, medianCell, table } from './report.js';

const n = Number(flag('n', '2000'));
const runs = Number(flag('runs', '3'));
const engines = flag('engines', 'memory,btree').split(',');
const syncModes = flag('sync', 'none,fsync').split(',') as SyncMode[];
/** `--references false` leaves out the two bare-server subjects (for profiling impulse alone). */
const references = flag('references', 'true') !== 'false';
const out = flag('out', 'bench/results/seq-latency.md');
const VALUE = Buffer.from('bar');
const OPS = ['PUT', 'GET (present)', 'DELETE', 'GET (missing)'] as const;
type Op = (typeof OPS)[number];

/** One sequential client: sends a request, resolves when its answer has been read in full. */
type Send = (method: 'PUT' | 'GET' | 'DELETE', key: string) => Promise<void>;

const STAGES = ['sent', 'request', 'handle', 'write', 'apply', 'engine', 'engineDone', 'writeDone', 'end', 'finish', 'response', 'done'] as const;
type Stage = (typeof STAGES)[number];

/** The marks of the request in flight (one at a time); `record` keeps each finished request's. */
class Marks {
  enabled = false;
  private current = new Map<Stage, number>();
  readonly finished: Array<Map<Stage, number>> = [];

  mark(stage: Stage): void {
    if (this.enabled && !this.current.has(stage)) this.current.set(stage, performance.now());
  }

  record(): void {
    if (!this.enabled) return;
    this.finished.push(this.current);
    this.current = new Map();
  }

  reset(): void {
    this.current = new Map();
    this.finished.length = 0;
  }
}

const marks = new Marks();

/** The bare client, marking the client-side stages. */
function markedBareClient(port: number): { send: Send; close: () => void } {
  const client = bareClient(port, {
    sent: () => marks.mark('sent'),
    response: () => marks.mark('response'),
    done: () => {
      marks.mark('done');
      marks.record();
    },
  });
  return { send: (method, key) => client.send(method, key, method === 'PUT' ? VALUE : undefined), close: () => client.close() };
}

/** ImpulseClient as the sequential benchmark uses it. */
function impulseClient(port: number): { send: Send; close: () => void } {
  const client = new ImpulseClient({ endpoint: `http://127.0.0.1:${port}`, connectionsMax: 1 });
  const send: Send = async (method, key) => {
    if (method === 'PUT') await client.put(key, VALUE);
    else if (method === 'GET') await client.get(key);
    else await client.del(key);
  };
  return { send, close: () => client.close() };
}

/** The reference: a node:http server holding a Map (bench/lib/bare-kv-handler.ts), answering as ImpulseClient needs. */
async function bareServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer(bareKvHandler(new Map(), { impulseClient: true }));
  return listen(server, async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
}

async function listen(server: Server, close: () => Promise<void>): Promise<{ port: number; close: () => Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close };
}

/** ImpulseServer on a fresh LocalKvService, with the bench-only stage wrappers installed (inactive until `marks.enabled`). */
async function impulseServer(engine: string, sync: SyncMode, dir: string): Promise<{ port: number; close: () => Promise<void> }> {
  const service = await openLocalKvService({ engine, dataDir: dir, sync, limits: DEFAULT_LIMITS });
  const server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'bench' });
  instrument(server, service);
  const address = await server.listen(0, '127.0.0.1');
  return { port: address.port, close: () => server.close() };
}

/** Wraps the seams a request passes through so each marks its stage; resolutions are observed on the side, never delaying the chain. */
function instrument(server: ImpulseServer, service: LocalKvService): void {
  const inner = server as unknown as { server: Server; handle: (req: IncomingMessage, res: ServerResponse) => void };
  const handle = inner.handle.bind(server);
  inner.handle = (req, res) => {
    marks.mark('handle');
    handle(req, res);
  };
  inner.server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    marks.mark('request');
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    (res as unknown as { end: (...args: unknown[]) => ServerResponse }).end = (...args: unknown[]) => {
      marks.mark('end');
      return end(...args);
    };
    res.once('finish', () => marks.mark('finish'));
  });
  const write = service.write.bind(service);
  service.write = (command, ...rest) => {
    marks.mark('write');
    const result = write(command, ...(rest as []));
    result.then(() => marks.mark('writeDone'), () => {});
    return result;
  };
  const machine = (service as unknown as { machine: KvStateMachine }).machine;
  const applyBatch = machine.applyBatch.bind(machine);
  machine.applyBatch = (entries, options) => {
    marks.mark('apply');
    return applyBatch(entries, options);
  };
  const engineObject = machine.engine;
  const batch = engineObject.batch.bind(engineObject);
  engineObject.batch = (ops, options) => {
    marks.mark('engine');
    const result = batch(ops, options);
    result.then(() => marks.mark('engineDone'), () => {});
    return result;
  };
}

const LAYERS = ['engine.put', 'machine.applyBatch', 'service.write', 'service.write + session'] as const;
type Layer = (typeof LAYERS)[number];

/** Part 2: `n` writes (put then delete of `key-<i>`, alternating) through each layer of a fresh store, one at a time. */
async function layers(engine: string, sync: SyncMode): Promise<{ wallUs: Record<Layer, number>; cpuUs: Record<Layer, number> }> {
  const dir = await mkdtemp(join(tmpdir(), `impulse-seq-layers-${engine}-`));
  const service = await openLocalKvService({ engine, dataDir: dir, sync, limits: DEFAULT_LIMITS });
  const machine = (service as unknown as { machine: KvStateMachine }).machine;
  const key = (i: number): Buffer => Buffer.from(`key-${i >> 1}`);
  const opOf = (i: number): KvOp => (i % 2 === 0 ? { type: 'put', key: key(i), value: VALUE } : { type: 'del', key: key(i) });
  let seq = 0;
  const writes: Record<Layer, (i: number) => Promise<unknown>> = {
    // Under the state machine's own key prefix, as it would store it; the engine alone, no applied index.
    'engine.put': (i) => (i % 2 === 0 ? machine.engine.put(Buffer.from(`e${key(i).toString()}`), VALUE) : machine.engine.del(Buffer.from(`e${key(i).toString()}`))),
    'machine.applyBatch': (i) => machine.applyBatch([{ index: machine.appliedIndex + 1, term: 0, type: 'command', command: { ops: [opOf(i)] } }]),
    'service.write': (i) => service.write({ ops: [opOf(i)] }),
    'service.write + session': (i) => {
      seq++;
      return service.write({ ops: [opOf(i)], session: { clientId: 'bench', seq, ackedBelow: seq } });
    },
  };
  const wallUs = {} as Record<Layer, number>;
  const cpuUs = {} as Record<Layer, number>;
  try {
    for (const layer of LAYERS) {
      const write = writes[layer];
      for (let i = 0; i < 1000; i++) await write(i); // warm-up
      const cpu = process.cpuUsage();
      const started = performance.now();
      for (let i = 0; i < n; i++) await write(i);
      wallUs[layer] = ((performance.now() - started) * 1000) / n;
      const used = process.cpuUsage(cpu);
      cpuUs[layer] = (used.user + used.system) / n;
    }
  } finally {
    await service.close();
    await rm(dir, { recursive: true, force: true });
  }
  return { wallUs, cpuUs };
}

interface Figures {
  /** µs per request, wall, per op. */
  wallUs: Record<Op, number>;
  /** CPU µs per request (this process: server + client), per op. */
  cpuUs: Record<Op, number>;
  /** Median µs of each stage-to-stage step, per op (only runs with marks). */
  stagesUs?: Record<Op, Array<[string, number]>>;
}

const methodOf: Record<Op, 'PUT' | 'GET' | 'DELETE'> = { PUT: 'PUT', 'GET (present)': 'GET', DELETE: 'DELETE', 'GET (missing)': 'GET' };

/** Warm-up, then each op over `n` keys: timed and CPU-counted without marks, then once more with marks. */
async function measure(send: Send, withStages: boolean): Promise<Figures> {
  for (let i = 0; i < 3000; i++) await send(i % 3 === 0 ? 'PUT' : i % 3 === 1 ? 'GET' : 'DELETE', `warmup-${i - (i % 3)}`);
  const wallUs = {} as Record<Op, number>;
  const cpuUs = {} as Record<Op, number>;
  for (const op of OPS) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < n; i++) await send(methodOf[op], `key-${i}`);
    wallUs[op] = ((performance.now() - started) * 1000) / n;
    const used = process.cpuUsage(cpu);
    cpuUs[op] = (used.user + used.system) / n;
  }
  if (!withStages) return { wallUs, cpuUs };
  const stagesUs = {} as Record<Op, Array<[string, number]>>;
  for (const op of OPS) {
    marks.reset();
    marks.enabled = true;
    for (let i = 0; i < n; i++) await send(methodOf[op], `staged-${i}`);
    marks.enabled = false;
    stagesUs[op] = stageMedians(marks.finished);
  }
  return { wallUs, cpuUs, stagesUs };
}

/** Median µs between consecutive stages that every request of the op reached. */
function stageMedians(requests: ReadonlyArray<Map<Stage, number>>): Array<[string, number]> {
  const reached = STAGES.filter((stage) => requests.every((marked) => marked.has(stage)));
  const steps: Array<[string, number]> = [];
  for (let i = 1; i < reached.length; i++) {
    const from = reached[i - 1]!;
    const to = reached[i]!;
    steps.push([`${from} → ${to}`, median(requests.map((marked) => (marked.get(to)! - marked.get(from)!) * 1000))]);
  }
  steps.push(['total (sent → done)', median(requests.map((marked) => (marked.get('done')! - marked.get('sent')!) * 1000))]);
  return steps;
}

interface Subject {
  readonly label: string;
  readonly stages: boolean;
  run(): Promise<Figures>;
}

function subjects(): Subject[] {
  const list: Subject[] = !references ? [] : [
    { label: 'bare server, bare client', stages: false, run: () => withServer(bareServer(), markedBareClient, false) },
    { label: 'bare server, ImpulseClient', stages: false, run: () => withServer(bareServer(), impulseClient, false) },
  ];
  for (const engine of engines) {
    for (const sync of engine === 'memory' ? (['none'] as const) : syncModes) {
      const label = engine === 'memory' ? 'impulse memory' : `impulse ${engine} (sync ${sync})`;
      list.push({
        label,
        stages: true,
        run: async () => {
          const dir = await mkdtemp(join(tmpdir(), `impulse-seq-latency-${engine}-`));
          try {
            return await withServer(impulseServer(engine, sync, dir), markedBareClient, true);
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      });
    }
  }
  return list;
}

async function withServer(
  starting: Promise<{ port: number; close: () => Promise<void> }>,
  clientFor: (port: number) => { send: Send; close: () => void },
  withStages: boolean,
): Promise<Figures> {
  const server = await starting;
  const client = clientFor(server.port);
  try {
    return await measure(client.send, withStages);
  } finally {
    client.close();
    await server.close();
  }
}

function us(value: number): string {
  return formatNumber(value, 1);
}

async function main(): Promise<void> {
  console.log(machineLine());
  console.log(loadLine());
  const list = subjects();
  const results = new Map<string, Figures[]>(list.map(({ label }) => [label, []]));
  const stores = engines.flatMap((engine) => (engine === 'memory' ? (['none'] as const) : syncModes).map((sync) => ({ engine, sync, label: engine === 'memory' ? 'memory' : `${engine} (sync ${sync})` })));
  const layerResults = new Map<string, Array<Awaited<ReturnType<typeof layers>>>>(stores.map(({ label }) => [label, []]));
  for (let run = 1; run <= runs; run++) {
    for (const { engine, sync, label } of stores) {
      const figures = await layers(engine, sync);
      layerResults.get(label)!.push(figures);
      console.log(`run ${run}/${runs} layers ${label.padEnd(20)} ${LAYERS.map((layer) => `${layer} ${us(figures.wallUs[layer])} µs (cpu ${us(figures.cpuUs[layer])})`).join('  ')}`);
    }
    for (const subject of list) {
      const figures = await subject.run();
      results.get(subject.label)!.push(figures);
      console.log(`run ${run}/${runs} ${subject.label.padEnd(28)} ${OPS.map((op) => `${op} ${us(figures.wallUs[op])} µs (cpu ${us(figures.cpuUs[op])})`).join('  ')}`);
    }
  }
  const roundTrip = table(
    ['subject', ...OPS.map((op) => `${op} µs`), ...OPS.map((op) => `${op} CPU µs`)],
    list.map(({ label }) => {
      const all = results.get(label)!;
      return [label, ...OPS.map((op) => medianCell(all.map((f) => f.wallUs[op]), us)), ...OPS.map((op) => medianCell(all.map((f) => f.cpuUs[op]), us))];
    }),
  );
  const layerTable = table(
    ['store', ...LAYERS.map((layer) => `${layer} µs`), ...LAYERS.map((layer) => `${layer} CPU µs`)],
    stores.map(({ label }) => {
      const all = layerResults.get(label)!;
      return [label, ...LAYERS.map((layer) => medianCell(all.map((f) => f.wallUs[layer]), us)), ...LAYERS.map((layer) => medianCell(all.map((f) => f.cpuUs[layer]), us))];
    }),
  );
  const stageTables = list
    .filter((subject) => subject.stages)
    .map(({ label }) => {
      const all = results.get(label)!;
      const sections = OPS.map((op) => {
        const names = all[0]!.stagesUs![op].map(([name]) => name);
        const rows = names.map((name, index) => [name, medianCell(all.map((f) => f.stagesUs![op][index]?.[1] ?? Number.NaN), us)]);
        return `${op}:\n\n${table(['stage', 'µs'], rows)}`;
      });
      return `### ${label}\n\n${sections.join('\n\n')}`;
    });
  const markdown = [
    '# Sequential latency: where a lone request goes',
    '',
    machineLine(),
    '',
    loadLine() + ' (at the end of the run)',
    '',
    `\`node dist/bench/seq-latency.js --n ${n} --runs ${runs}\`: server and client in one process, one keep-alive connection, one request at a time; median (min–max) of ${runs} run(s), ${n} requests per figure. Shared machine.`,
    '',
    '## Round trip',
    '',
    roundTrip,
    '',
    '## The write path without HTTP (one write at a time, puts and deletes alternating)',
    '',
    layerTable,
    '',
    '## Stages of an impulse request (median µs per step; the bench-only marks cost a little themselves)',
    '',
    ...stageTables.flatMap((section) => [section, '']),
  ].join('\n');
  console.log('\n' + markdown);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, markdown);
}

await main();

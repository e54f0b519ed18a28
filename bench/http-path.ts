/**
 * What impulse's own code costs per HTTP request, without sockets: impulse's
 * node:http server (ImpulseServer, with its request pipeline, routing,
 * metrics) on each engine, and beside it the bare node:http server with a
 * Map (the ceiling's handler, bench/lib/bare-kv-handler.ts), each fed by
 * in-process connections whose socket is a stand-in: a Duplex that hands
 * node:http the bytes wrk sends and counts the answers it writes. Both sides
 * run node:http's own parser, IncomingMessage / ServerResponse and header
 * serialisation; what neither pays is the kernel and the TCP handle, which
 * cost the same for both (bench/concurrent.ts measures the whole path with
 * wrk). The difference between an impulse cell and the ceiling's is impulse's
 * code: the pipeline, routing, key decoding, the service, the state machine,
 * the engine, the record decoding, the answer and the metrics.
 *
 * Per cell: the process's CPU time (user + system, process.cpuUsage) per
 * request, the median of `--runs` runs (after one warm-up run; within a run
 * the servers take turns, `--slices` times) with the range, and the extra µs over the
 * ceiling in the same run. CPU time, not wall time: on a shared machine it
 * moves far less than requests/s.
 *
 *   node dist/bench/http-path.js [--requests 200000] [--runs 5] [--connections 100] [--keys 1000] [--slices 20]
 *        [--servers ceiling,memory,leveldb,lsm,btree] [--ops GET,PUT] [--docs]
 *
 * `--docs` writes the table into docs/benchmarks.md (section "http-path").
 *
 * With --cpu-prof and one server (`--servers memory --ops GET`), the profile
 * holds impulse's GET path and node:http with nothing else in it.
 */
import { Duplex } from 'node:stream';
import { type Server, createServer } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ImpulseServer } from '../src/api/server.js';
import { openLocalKvService } from '../src/service/open-local.js';
import { DEFAULT_LIMITS } from '../src/storage/engine.js';
import { bareKvHandler } from './lib/bare-kv-handler.js';
import { flag, formatNumber, loadLine, machineLine, median, writeSection } from './report.js';

const requestsPerCell = Number(flag('requests', '200000'));
const runs = Number(flag('runs', '5'));
const connectionCount = Number(flag('connections', '100'));
const keyCount = Number(flag('keys', '1000'));
const serverNames = flag('servers', 'ceiling,memory,leveldb,lsm,btree').split(',');
const operations = flag('ops', 'GET,PUT').split(',') as Op[];
/** Each run's requests per server are sent in this many slices, the servers taking turns. */
const slices = Number(flag('slices', '20'));
const CEILING_NAME = 'bare node:http + Map (ceiling)';

type Op = 'GET' | 'PUT';

const STATUS_LINE = Buffer.from('HTTP/1.1 ');

/**
 * The socket node:http sees: reads are what `send` pushes, writes are
 * dropped after counting the answers in them (node:http writes every
 * answer's head as a chunk of its own that starts with the status line).
 */
class StandInSocket extends Duplex {
  sent = 0;
  answered = 0;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 1;

  get idle(): boolean {
    return this.answered === this.sent;
  }

  send(request: Buffer): void {
    this.sent++;
    this.push(request);
  }

  override _read(): void {}

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.count(chunk);
    callback();
  }

  override _writev(chunks: Array<{ chunk: Buffer | string }>, callback: (error?: Error | null) => void): void {
    for (const { chunk } of chunks) this.count(chunk);
    callback();
  }

  private count(chunk: Buffer | string): void {
    const head = typeof chunk === 'string' ? chunk.startsWith('HTTP/1.1 ') : chunk.length >= STATUS_LINE.length && STATUS_LINE.equals(chunk.subarray(0, STATUS_LINE.length));
    if (head) this.answered++;
  }
}

interface Target {
  readonly name: string;
  readonly connections: StandInSocket[];
  close(): Promise<void>;
}

function connect(server: Server): StandInSocket[] {
  return Array.from({ length: connectionCount }, () => {
    const socket = new StandInSocket();
    server.emit('connection', socket);
    return socket;
  });
}

async function ceilingTarget(): Promise<Target> {
  const server = createServer(bareKvHandler(new Map()));
  return { name: CEILING_NAME, connections: connect(server), close: async () => {} };
}

async function impulseTarget(engine: string): Promise<Target> {
  const dataDir = await mkdtemp(join(tmpdir(), `impulse-http-path-${engine}-`));
  const service = await openLocalKvService({ engine, dataDir, sync: 'none', limits: DEFAULT_LIMITS });
  const impulse = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'bench' });
  const server = (impulse as unknown as { server: Server }).server;
  const connections = connect(server);
  return {
    name: `impulse ${engine}`,
    connections,
    close: async () => {
      for (const socket of connections) socket.destroy();
      await impulse.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** What wrk sends: the request line and Host; a PUT carries "bar" with its Content-Length. */
function requestBytes(op: Op, key: number): Buffer {
  const head = `${op} /kv/key${key} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  return Buffer.from(op === 'PUT' ? `${head}Content-Length: 3\r\n\r\nbar` : `${head}\r\n`, 'latin1');
}

const REQUESTS: Record<Op, Buffer[]> = {
  GET: Array.from({ length: keyCount }, (_, key) => requestBytes('GET', key)),
  PUT: Array.from({ length: keyCount }, (_, key) => requestBytes('PUT', key)),
};

/** Lets the write path's setImmediate and the answers' microtasks run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Sends `count` requests of `op` as wrk does: every connection has one
 * request outstanding and sends the next once its answer is out. Resolves
 * with the CPU µs they took.
 */
async function cell(target: Target, op: Op, count: number): Promise<number> {
  const requests = REQUESTS[op];
  let sent = 0;
  const before = process.cpuUsage();
  while (sent < count) {
    for (const socket of target.connections) {
      if (sent === count) break;
      if (socket.idle) socket.send(requests[sent++ % requests.length]!);
    }
    await turn();
  }
  while (!target.connections.every((socket) => socket.idle)) await turn();
  const used = process.cpuUsage(before);
  return used.user + used.system;
}

async function main(): Promise<void> {
  const loadStart = loadLine();
  const targets: Target[] = [];
  for (const name of serverNames) targets.push(name === 'ceiling' ? await ceilingTarget() : await impulseTarget(name));
  // Every key exists before the GETs (a PUT through each server's own path).
  for (const target of targets) await cell(target, 'PUT', keyCount);
  const results = new Map<string, number[]>();
  const extra = new Map<string, number[]>();
  const sliceRequests = Math.ceil(requestsPerCell / slices);
  for (let run = 0; run < runs + 1; run++) {
    for (const op of operations) {
      // Each server's requests in slices, the servers taking turns: load from elsewhere falls on all alike.
      const cpuMicros = targets.map(() => 0);
      for (let slice = 0; slice < slices; slice++) {
        for (const [index, target] of targets.entries()) cpuMicros[index]! += await cell(target, op, sliceRequests);
      }
      if (run === 0) continue; // warms up
      const ceilingIndex = targets.findIndex((target) => target.name === CEILING_NAME);
      for (const [index, target] of targets.entries()) {
        const micros = cpuMicros[index]! / (sliceRequests * slices);
        push(results, `${target.name}|${op}`, micros);
        if (ceilingIndex !== -1 && index !== ceilingIndex) push(extra, `${target.name}|${op}`, micros - cpuMicros[ceilingIndex]! / (sliceRequests * slices));
      }
    }
  }
  for (const target of targets) await target.close();
  const lines = [
    `${machineLine()} · ${loadStart} at the start, ${loadLine()} at the end`,
    '',
    `\`node dist/bench/http-path.js --requests ${requestsPerCell} --runs ${runs} --connections ${connectionCount} --keys ${keyCount} --slices ${slices}\`: ` +
      `per server and operation ${requestsPerCell} requests over ${connectionCount} in-process connections (a stand-in socket under node:http; no kernel), ${keyCount} keys, ` +
      `${runs} runs after a warm-up run, each run in ${slices} slices per server with the servers taking turns. CPU µs per request is the process's user + system time ÷ requests, ` +
      'median of the runs (min–max); "extra" is the cell minus the ceiling in the same run, median (min–max): impulse\'s own code per request.',
    '',
    '| server | op | CPU µs/request | extra µs over the ceiling | vs ceiling |',
    '|---|---|---:|---:|---:|',
  ];
  for (const [key, values] of results) {
    const [name, op] = key.split('|');
    const over = extra.get(key);
    const ceilingValues = results.get(`${CEILING_NAME}|${op}`);
    const ratio = over === undefined || ceilingValues === undefined ? '' : `${formatNumber(median(values) / median(ceilingValues), 2)}×`;
    lines.push(`| ${name} | ${op} | ${spread(values)} | ${over === undefined ? '' : spread(over)} | ${ratio} |`);
  }
  console.log(lines.join('\n'));
  if (process.argv.includes('--docs')) await writeSection('http-path', `## HTTP request path in process (\`bench/http-path.ts\`)\n\n${lines.join('\n')}`);
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const values = map.get(key);
  if (values === undefined) map.set(key, [value]);
  else values.push(value);
}

function spread(values: readonly number[]): string {
  return `${formatNumber(median(values), 2)} (${formatNumber(Math.min(...values), 2)}–${formatNumber(Math.max(...values), 2)})`;
}

await main();

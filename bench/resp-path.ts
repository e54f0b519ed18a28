/**
 * What impulse's own code costs per Redis-protocol command, without sockets:
 * a RespServer on the memory engine gets connections whose socket is a stand-in
 * (it counts the bytes written and takes everything at once), and each is fed
 * the bytes redis-benchmark sends — one command per read, or 16 per read
 * (`-P 16`) — for GET and SET. Per cell: the process's CPU time (user +
 * system, process.cpuUsage) per command, median of `--runs` with the range.
 *
 * This leaves out the kernel and node:net, which cost the same for impulse
 * and for a bare server (bench/resp.ts measures the whole path against Redis);
 * what is left is the parser, the connection's scheduling, the command, the
 * service and the engine, the reply encoding and the metrics: the part a
 * change in src/resp can move. CPU time, not wall time, so that it holds up
 * on a shared machine better than requests/s does.
 *
 *   node dist/bench/resp-path.js [--commands 200000] [--runs 5] [--connections 100] [--cells GET,SET,'GET -P 16','SET -P 16']
 *
 * Under `perf record` (with node's --perf-basic-prof) or --cpu-prof, one cell
 * (`--cells 'GET -P 16'`) profiles impulse's own code with nothing else in it.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { pino } from 'pino';
import { RespServer } from '../src/resp/server.js';
import { openLocalKvService } from '../src/service/open-local.js';
import { DEFAULT_LIMITS } from '../src/storage/engine.js';
import { flag, formatNumber, machineLine, median } from './report.js';

const commandsPerCell = Number(flag('commands', '200000'));
const runs = Number(flag('runs', '5'));
const connectionCount = Number(flag('connections', '100'));
const cellNames = flag('cells', 'GET,SET,GET -P 16,SET -P 16').split(',');

/**
 * The socket a RespConnection sees: writes are counted and dropped, the
 * kernel takes everything at once (nothing stays unsent), reads are what
 * the benchmark emits as 'data'.
 */
class StandInSocket extends EventEmitter {
  bytesWritten = 0;
  readonly writableLength = 0;
  writableEnded = false;
  destroyed = false;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 1;
  write(chunk: Uint8Array): boolean {
    this.bytesWritten += chunk.length;
    return true;
  }
  cork(): void {}
  uncork(): void {}
  pause(): this {
    return this;
  }
  resume(): this {
    return this;
  }
  end(): this {
    this.writableEnded = true;
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    this.emit('close');
    return this;
  }
}

function command(...args: string[]): Buffer {
  return Buffer.from(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`);
}

/** redis-benchmark's requests: key:__rand_int__ replaced per request, value of 3 bytes ('xxx'). */
function requests(op: 'GET' | 'SET', perRead: number, first: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < perRead; i++) {
    const key = `key:${String((first + i) % 10_000).padStart(12, '0')}`;
    parts.push(op === 'GET' ? command('GET', key) : command('SET', key, 'xxx'));
  }
  return Buffer.concat(parts);
}

/** Lets the put coalescer's setImmediate and the replies' microtasks run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function cell(server: RespServer, op: 'GET' | 'SET', perRead: number): Promise<number> {
  const accept = (server as unknown as { accept(socket: Socket): void }).accept.bind(server);
  const sockets = Array.from({ length: connectionCount }, () => new StandInSocket());
  for (const socket of sockets) accept(socket as unknown as Socket);
  const reads = Array.from({ length: 64 }, (_, i) => requests(op, perRead, i * perRead));
  const readsPerTurn = connectionCount; // every connection sends one read, then waits for its replies, as a benchmark client does
  const turns = Math.ceil(commandsPerCell / (perRead * readsPerTurn));
  const before = process.cpuUsage();
  for (let t = 0; t < turns; t++) {
    for (let c = 0; c < connectionCount; c++) sockets[c]!.emit('data', reads[(t + c) % reads.length]!);
    await turn();
  }
  const used = process.cpuUsage(before);
  for (const socket of sockets) socket.destroy();
  return (used.user + used.system) / (turns * readsPerTurn * perRead);
}

async function main(): Promise<void> {
  const service = await openLocalKvService({ engine: 'memory', dataDir: '/nonexistent-unused-by-memory', sync: 'none', limits: DEFAULT_LIMITS });
  const server = new RespServer({ service, logger: pino({ level: 'silent' }), version: 'bench' });
  // Fill the keys the GETs read.
  await cell(server, 'SET', 16);
  const cells = [
    { name: 'GET', op: 'GET' as const, perRead: 1 },
    { name: 'SET', op: 'SET' as const, perRead: 1 },
    { name: 'GET -P 16', op: 'GET' as const, perRead: 16 },
    { name: 'SET -P 16', op: 'SET' as const, perRead: 16 },
  ].filter((c) => cellNames.includes(c.name));
  const results = new Map<string, number[]>(cells.map((c) => [c.name, []]));
  for (let run = 0; run < runs + 1; run++) {
    for (const c of cells) {
      const micros = await cell(server, c.op, c.perRead);
      if (run > 0) results.get(c.name)!.push(micros); // run 0 warms up
    }
  }
  await server.close();
  await service.close();
  console.log(machineLine());
  console.log(`${commandsPerCell} commands per cell over ${connectionCount} connections, ${runs} runs after a warm-up; CPU µs per command: median (min–max); on a loaded machine the minimum is the steadier figure (load only adds)`);
  for (const [name, values] of results) {
    console.log(`${name.padEnd(10)} ${formatNumber(median(values), 2).padStart(6)} (${formatNumber(Math.min(...values), 2)}–${formatNumber(Math.max(...values), 2)})`);
  }
}

await main();

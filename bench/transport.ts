/**
 * The TCP transport on loopback, beside a bare node:net echo (the ceiling: the
 * same length-prefixed echo with no handshake, msgpack, queues or stats).
 *
 *   node dist/bench/transport.js [--runs 3] [--seconds 2] [--snapshot-mib 128]
 *
 * For each placement (both ends in this process; the echo end in a child
 * process) and body size (100 B, 4 KiB):
 *   - throughput: echoes per second with 256 requests outstanding (each echo is
 *     two messages, one each way);
 *   - latency: p50/p99 of 2000 ping-pongs, one outstanding;
 * and snapshot streaming MiB/s (the receiver only reads). Prints a markdown
 * table (median of the runs, min–max in brackets) and writes it to
 * bench/results/transport.md. Internal: `--child tcp|raw --parent-port N`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { type Socket, connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { TcpTransport } from '../src/transport/tcp-transport.js';
import { reapOnExit } from '../testkit/process/member-process.js';
import type { InboundHandlers, PeerMessage } from '../src/transport/transport.js';
import { REPO_ROOT, flag, formatNumber, machineLine, table } from './report.js';

const SCRIPT = fileURLToPath(import.meta.url);
const logger = pino({ level: 'silent' });
const WINDOW = 256;
const PINGS = 2000;

/** One end of an echo benchmark: send a body, get called back when its echo arrives. */
interface EchoClient {
  send(body: Uint8Array): void;
  onEcho: () => void;
  streamSnapshot?(mib: number): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- echo ends

function transportEcho(peerPort: number | null): Promise<{ transport: TcpTransport; port: number }> {
  let transport: TcpTransport;
  const handlers: InboundHandlers = {
    onMessage: (from, message) => transport.send(from, message),
    onSnapshot: async (_from, _header, chunks) => {
      for await (const chunk of chunks) void chunk;
    },
  };
  const peers = new Map(peerPort === null ? [] : [[1, `127.0.0.1:${peerPort}`]]);
  transport = new TcpTransport({ localId: 2, clusterId: 'bench', listenHost: '127.0.0.1', listenPort: 0, peers, handlers, logger, acceptUnknownPeers: true });
  return transport.start().then(({ port }) => ({ transport, port }));
}

/** A bare echo: reads u32-length-prefixed frames and writes them back as they come. */
function rawEcho(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as { port: number }).port,
        close: () => {
          for (const socket of sockets) socket.destroy();
          return new Promise((done) => server.close(() => done()));
        },
      }),
    ),
  );
}

// ---------------------------------------------------------------- clients

async function transportClient(echoPort: () => Promise<number>, closeEcho: () => Promise<void>): Promise<EchoClient> {
  const client: EchoClient = {
    send: () => undefined,
    onEcho: () => undefined,
    close: async () => undefined,
  };
  const handlers: InboundHandlers = {
    onMessage: () => client.onEcho(),
    onSnapshot: async () => undefined,
  };
  const transport = new TcpTransport({ localId: 1, clusterId: 'bench', listenHost: '127.0.0.1', listenPort: 0, peers: new Map(), handlers, logger, acceptUnknownPeers: true });
  const { port } = await transport.start();
  process.env.BENCH_PARENT_PORT = String(port);
  transport.setPeers(new Map([[2, `127.0.0.1:${await echoPort()}`]]));
  client.send = (body) => transport.send(2, { channel: 'bench', group: 0, body } satisfies PeerMessage);
  client.streamSnapshot = async (mib) => {
    const chunk = Buffer.alloc(1024 * 1024, 7);
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < mib; i++) yield chunk;
    }
    await transport.sendSnapshot(2, { channel: 'bench', group: 0, body: null }, source());
  };
  client.close = async () => {
    await transport.close();
    await closeEcho();
  };
  return client;
}

async function rawClient(port: number, closeEcho: () => Promise<void>): Promise<EchoClient> {
  const socket = await new Promise<Socket>((resolve) => {
    const s = connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(s));
  });
  const client: EchoClient = { send: () => undefined, onEcho: () => undefined, close: async () => undefined };
  // Streaming parse without copying bodies: a 4-byte length, then skip that many bytes.
  const header = Buffer.alloc(4);
  let headerFilled = 0;
  let bodyLeft = -1;
  socket.on('data', (chunk: Buffer) => {
    let offset = 0;
    while (offset < chunk.length) {
      if (bodyLeft < 0) {
        const take = Math.min(4 - headerFilled, chunk.length - offset);
        chunk.copy(header, headerFilled, offset, offset + take);
        headerFilled += take;
        offset += take;
        if (headerFilled < 4) break;
        headerFilled = 0;
        bodyLeft = header.readUInt32BE(0);
      }
      const skip = Math.min(bodyLeft, chunk.length - offset);
      bodyLeft -= skip;
      offset += skip;
      if (bodyLeft === 0) {
        bodyLeft = -1;
        client.onEcho();
      }
    }
  });
  client.send = (body) => {
    const frame = Buffer.allocUnsafe(4 + body.length);
    frame.writeUInt32BE(body.length, 0);
    frame.set(body, 4);
    socket.write(frame);
  };
  client.streamSnapshot = async (mib) => {
    // The ceiling for streaming: the same bytes through a socket the peer echoes back, counted on return.
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const frame = Buffer.allocUnsafe(4);
    frame.writeUInt32BE(chunk.length, 0);
    let echoed = 0;
    await new Promise<void>((resolve) => {
      client.onEcho = () => {
        if (++echoed === mib) resolve();
      };
      let sent = 0;
      const pump = (): void => {
        while (sent < mib) {
          sent++;
          socket.write(frame);
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
      };
      pump();
    });
  };
  client.close = async () => {
    socket.destroy();
    await closeEcho();
  };
  return client;
}

function spawnChild(kind: 'tcp' | 'raw', parentPort: string | undefined): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [SCRIPT, '--child', kind, '--parent-port', parentPort ?? '0'], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  reapOnExit(child); // an interrupted benchmark leaves no echo server behind
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`echo child exited ${code}`)));
    child.stdout!.once('data', (line: Buffer) => resolve({ port: Number(/listening (\d+)/.exec(line.toString())![1]), child }));
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid!, 'SIGTERM');
  await exited;
}

async function makeClient(kind: 'tcp' | 'raw', placement: 'in-process' | 'two processes'): Promise<EchoClient> {
  if (placement === 'in-process') {
    if (kind === 'raw') {
      const echo = await rawEcho();
      return rawClient(echo.port, echo.close);
    }
    let echoTransport: TcpTransport | null = null;
    return transportClient(
      async () => {
        const echo = await transportEcho(Number(process.env.BENCH_PARENT_PORT));
        echoTransport = echo.transport;
        return echo.port;
      },
      async () => echoTransport?.close(),
    );
  }
  if (kind === 'raw') {
    const { port, child } = await spawnChild('raw', undefined);
    return rawClient(port, () => stopChild(child));
  }
  let child: ChildProcess | null = null;
  return transportClient(
    async () => {
      const spawned = await spawnChild('tcp', process.env.BENCH_PARENT_PORT);
      child = spawned.child;
      return spawned.port;
    },
    async () => (child === null ? undefined : stopChild(child)),
  );
}

// ---------------------------------------------------------------- measurements

async function throughput(client: EchoClient, bodyBytes: number, seconds: number): Promise<number> {
  const body = new Uint8Array(bodyBytes).fill(1);
  let completed = 0;
  let stop = false;
  const finished = new Promise<void>((resolve) => {
    let outstanding = 0;
    client.onEcho = () => {
      completed++;
      outstanding--;
      if (!stop) {
        outstanding++;
        client.send(body);
      } else if (outstanding === 0) resolve();
    };
    for (let i = 0; i < WINDOW; i++, outstanding++) client.send(body);
  });
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const elapsed = (performance.now() - started) / 1000;
  const count = completed;
  stop = true;
  await finished;
  return count / elapsed;
}

async function latency(client: EchoClient, bodyBytes: number): Promise<{ p50: number; p99: number }> {
  const body = new Uint8Array(bodyBytes).fill(2);
  const samples: number[] = [];
  for (let i = 0; i < PINGS; i++) {
    const started = performance.now();
    await new Promise<void>((resolve) => {
      client.onEcho = resolve;
      client.send(body);
    });
    samples.push((performance.now() - started) * 1000);
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(PINGS * 0.5)]!, p99: samples[Math.floor(PINGS * 0.99)]! };
}

async function warmUp(client: EchoClient): Promise<void> {
  for (let i = 0; i < 200; i++) await new Promise<void>((resolve) => ((client.onEcho = resolve), client.send(new Uint8Array(10))));
}

type Row = Record<string, number>;

async function oneRun(seconds: number, snapshotMib: number): Promise<Row> {
  const row: Row = {};
  for (const placement of ['in-process', 'two processes'] as const) {
    for (const kind of ['tcp', 'raw'] as const) {
      const client = await makeClient(kind, placement);
      try {
        await warmUp(client);
        for (const bytes of [100, 4096]) {
          const label = `${placement}|${kind}|${bytes}`;
          row[`${label}|echoes/s`] = await throughput(client, bytes, seconds);
          const { p50, p99 } = await latency(client, bytes);
          row[`${label}|p50 µs`] = p50;
          row[`${label}|p99 µs`] = p99;
        }
        const started = performance.now();
        await client.streamSnapshot!(snapshotMib);
        row[`${placement}|${kind}|snapshot MiB/s`] = snapshotMib / ((performance.now() - started) / 1000);
      } finally {
        await client.close();
      }
    }
  }
  return row;
}

function summary(rows: Row[], key: string, digits = 0): string {
  const values = rows.map((row) => row[key]!).sort((a, b) => a - b);
  const median = values[Math.floor(values.length / 2)]!;
  return `${formatNumber(median, digits)} (${formatNumber(values[0]!, digits)}–${formatNumber(values.at(-1)!, digits)})`;
}

async function main(): Promise<void> {
  const runs = Number(flag('runs', '3'));
  const seconds = Number(flag('seconds', '2'));
  const snapshotMib = Number(flag('snapshot-mib', '128'));
  const rows: Row[] = [];
  for (let run = 0; run < runs; run++) {
    rows.push(await oneRun(seconds, snapshotMib));
    console.error(`run ${run + 1}/${runs} done`);
  }
  const lines: (string | number)[][] = [];
  for (const placement of ['in-process', 'two processes']) {
    for (const bytes of [100, 4096]) {
      for (const kind of ['tcp', 'raw']) {
        const label = `${placement}|${kind}|${bytes}`;
        lines.push([
          `${placement}, ${bytes === 100 ? '100 B' : '4 KiB'}, ${kind === 'tcp' ? 'TcpTransport' : 'bare node:net echo'}`,
          summary(rows, `${label}|echoes/s`),
          summary(rows, `${label}|p50 µs`),
          summary(rows, `${label}|p99 µs`),
        ]);
      }
    }
  }
  const snapshots = ['in-process', 'two processes'].flatMap((placement) => [
    [`${placement}, TcpTransport snapshot stream`, summary(rows, `${placement}|tcp|snapshot MiB/s`)],
    [`${placement}, bare node:net (echoed back)`, summary(rows, `${placement}|raw|snapshot MiB/s`)],
  ]);
  const markdown = [
    '# TCP transport benchmark (`node dist/bench/transport.js`)',
    '',
    machineLine(),
    '',
    `Median of ${runs} runs, min–max in brackets; the machine was shared with other engineers' work. Loopback (127.0.0.1).`,
    `Echoes/s: ${WINDOW} requests outstanding, ${seconds} s per cell; each echo is one message each way. Latency: ${PINGS} ping-pongs, one outstanding.`,
    '',
    table(['placement, body, implementation', 'echoes/s', 'p50 µs', 'p99 µs'], lines),
    '',
    `Snapshot streaming, ${snapshotMib} MiB (256 KiB chunks, window 4; the bare row sends 1 MiB frames and counts them as they come back):`,
    '',
    table(['stream', 'MiB/s'], snapshots),
  ].join('\n');
  console.log(markdown);
  await writeFile(`${REPO_ROOT}bench/results/transport.md`, markdown + '\n');
}

async function child(kind: string, parentPort: number): Promise<void> {
  if (kind === 'raw') {
    const echo = await rawEcho();
    console.log(`listening ${echo.port}`);
  } else {
    const echo = await transportEcho(parentPort);
    console.log(`listening ${echo.port}`);
  }
  process.on('SIGTERM', () => process.exit(0));
  setInterval(() => undefined, 1 << 30); // stay alive until told to stop
}

const childKind = flag('child', '');
if (childKind !== '') await child(childKind, Number(flag('parent-port', '0')));
else await main();

/**
 * Test tooling for the TCP transport: real transports on 127.0.0.1 with port
 * 0, an inbox per node, a log recorder, a socket factory that counts writes
 * and can rewrite or freeze a connection, a manual clock, and a polling wait
 * (conditions with generous deadlines, never fixed sleeps).
 */
import type { Socket } from 'node:net';
import { pino, type Logger } from 'pino';
import type { NodeId } from '../../src/raft/types.js';
import type { Clock, TimerHandle } from '../../src/util/clock.js';
import { type Frame, FrameDecoder, FrameType, PROTOCOL_VERSION, encodeValueFrame, preamble, unpackValue } from '../../src/transport/frames.js';
import { type Hello, helloToWire } from '../../src/transport/handshake.js';
import type { TransportLimits } from '../../src/transport/options.js';
import { type HostPort, type Listener, NetSocketFactory, type SocketFactory, formatAddress } from '../../src/transport/socket-factory.js';
import { TcpTransport } from '../../src/transport/tcp-transport.js';
import type { InboundHandlers, PeerAddress, PeerMessage } from '../../src/transport/transport.js';

export interface LogRecord {
  readonly level: number;
  readonly msg: string;
  readonly code?: string;
  readonly reason?: string;
  readonly [field: string]: unknown;
}

/** A pino logger that keeps its records in memory (at `level` and above). */
export function recordingLogger(level: pino.LevelWithSilent = 'debug'): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = pino({ level }, { write: (line: string) => void records.push(JSON.parse(line) as LogRecord) });
  return { logger, records };
}

/** Polls `condition` every 5 ms until it holds; rejects after `timeoutMs` with `what`. */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface Received {
  readonly from: NodeId;
  readonly message: PeerMessage;
}

/** Handlers that record messages; snapshots go to `onSnapshot` (default: read all and accept). */
export class Inbox implements InboundHandlers {
  readonly messages: Received[] = [];
  onSnapshotHandler: InboundHandlers['onSnapshot'] = async (_from, _header, chunks) => {
    for await (const chunk of chunks) void chunk;
  };
  onMessageHook: ((from: NodeId, message: PeerMessage) => void) | null = null;

  onMessage(from: NodeId, message: PeerMessage): void {
    this.messages.push({ from, message });
    this.onMessageHook?.(from, message);
  }

  onSnapshot(from: NodeId, header: PeerMessage, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    return this.onSnapshotHandler(from, header, chunks);
  }

  from(id: NodeId): Received[] {
    return this.messages.filter((received) => received.from === id);
  }
}

export interface TestNode {
  readonly id: NodeId;
  readonly transport: TcpTransport;
  readonly inbox: Inbox;
  readonly address: PeerAddress;
  readonly records: LogRecord[];
}

export interface NodeOptions {
  readonly clusterId?: string;
  readonly limits?: Partial<TransportLimits>;
  readonly socketFactory?: SocketFactory;
  readonly acceptUnknownPeers?: boolean;
  readonly peers?: ReadonlyMap<NodeId, PeerAddress>;
  readonly port?: number;
}

/** Fast limits for tests: short backoff and timeouts so failures show within seconds. */
export const TEST_LIMITS: Partial<TransportLimits> = { backoffInitialMs: 20, backoffMaxMs: 200, handshakeTimeoutMs: 2000, connectTimeoutMs: 2000 };

/** One transport, listening on 127.0.0.1 (port 0 unless given). */
export async function startNode(id: NodeId, options: NodeOptions = {}): Promise<TestNode> {
  const inbox = new Inbox();
  const { logger, records } = recordingLogger();
  const transport = new TcpTransport({
    localId: id,
    clusterId: options.clusterId ?? 'test-cluster',
    listenHost: '127.0.0.1',
    listenPort: options.port ?? 0,
    peers: options.peers ?? new Map(),
    handlers: inbox,
    logger,
    limits: { ...TEST_LIMITS, ...options.limits },
    ...(options.socketFactory === undefined ? {} : { socketFactory: options.socketFactory }),
    ...(options.acceptUnknownPeers === undefined ? {} : { acceptUnknownPeers: options.acceptUnknownPeers }),
  });
  const address = formatAddress(await transport.start());
  return { id, transport, inbox, address, records };
}

/** `count` nodes with ids 1..count, each knowing every other. */
export async function startCluster(count: number, options: NodeOptions = {}): Promise<TestNode[]> {
  const nodes: TestNode[] = [];
  for (let id = 1; id <= count; id++) nodes.push(await startNode(id, options));
  const book = addressBook(nodes);
  for (const node of nodes) node.transport.setPeers(book);
  return nodes;
}

export function addressBook(nodes: readonly TestNode[]): Map<NodeId, PeerAddress> {
  return new Map(nodes.map((node) => [node.id, node.address]));
}

export async function closeAll(nodes: readonly TestNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.transport.close()));
}

/**
 * A socket factory around plain TCP that sees every socket it makes:
 * it counts write() calls on dialled sockets, can rewrite what they write
 * (`rewrite`, for fault injection), and can freeze them (stop reading and
 * writing, as a SIGSTOPped process would, while the TCP connection stays up).
 */
export class HookedSocketFactory implements SocketFactory {
  readonly dialled: Socket[] = [];
  writeCalls = 0;
  /** Called with every buffer written on a dialled socket; returns what is written instead. */
  rewrite: ((bytes: Buffer) => Buffer) | null = null;
  private readonly inner = new NetSocketFactory();

  async connect(address: HostPort, signal: AbortSignal): Promise<Socket> {
    const socket = await this.inner.connect(address, signal);
    const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
    socket.write = ((chunk: Buffer) => {
      this.writeCalls++;
      return write(this.rewrite === null ? chunk : this.rewrite(chunk));
    }) as Socket['write'];
    this.dialled.push(socket);
    return socket;
  }

  readonly accepted: Socket[] = [];

  listen(host: string, port: number, onConnection: (socket: Socket) => void): Promise<Listener> {
    return this.inner.listen(host, port, (socket) => {
      this.accepted.push(socket);
      onConnection(socket);
    });
  }

  /** Accepted sockets stop reading (a stopped receiver): the sender's writes back up. */
  stopReadingAccepted(): void {
    for (const socket of this.accepted) socket.pause();
  }

  /** Every dialled socket stops reading, and drops what it is asked to write. */
  freeze(): void {
    for (const socket of this.dialled) {
      socket.pause();
      socket.removeAllListeners('data');
      socket.write = (() => true) as Socket['write'];
    }
  }
}

/** A clock that moves only when told to: `advance(ms)` runs due timers in time order. */
export class ManualClock implements Clock {
  private nowMs = 0;
  private timers: { atMs: number; seq: number; callback: () => void; cancelled: boolean }[] = [];
  private seq = 0;

  now(): number {
    return this.nowMs;
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const timer = { atMs: this.nowMs + Math.max(0, delayMs), seq: this.seq++, callback, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  get pendingTimers(): number {
    return this.timers.filter((timer) => !timer.cancelled).length;
  }

  advance(ms: number): void {
    const target = this.nowMs + ms;
    for (;;) {
      const due = this.timers.filter((timer) => !timer.cancelled && timer.atMs <= target).sort((a, b) => a.atMs - b.atMs || a.seq - b.seq)[0];
      if (due === undefined) break;
      due.cancelled = true;
      this.nowMs = due.atMs;
      due.callback();
    }
    this.timers = this.timers.filter((timer) => !timer.cancelled);
    this.nowMs = target;
  }
}

/**
 * A hand-driven peer on a raw socket, for bytes no real transport would send:
 * it writes what it is told and decodes what comes back.
 */
export class RawPeer {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private readonly decoder = new FrameDecoder(1 << 30);

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let frame = this.decoder.next(); frame !== null; frame = this.decoder.next()) this.frames.push(frame);
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  static async connect(address: PeerAddress): Promise<RawPeer> {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const socket = await new NetSocketFactory().connect({ host, port }, new AbortController().signal);
    return new RawPeer(socket);
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Sends the preamble and a HELLO; resolves with the answer (WELCOME or REFUSE) as a decoded frame. */
  async hello(hello: Hello, version = PROTOCOL_VERSION): Promise<{ type: number; value: unknown }> {
    this.write(preamble(version));
    this.write(encodeValueFrame(FrameType.hello, helloToWire(hello)));
    await waitFor('a handshake answer', () => this.frames.length > 0 || this.isClosed);
    const frame = this.frames.shift();
    if (frame === undefined) throw new Error('closed without an answer');
    return { type: frame.type, value: unpackValue(frame.payload, 'answer') };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * An in-memory network of `send`-only transports on a ManualClock: each
 * message is delivered `delayMs` later (in send order), or dropped while
 * `dropping` says so. For testing layers above the Transport interface.
 */
export class ManualNetwork {
  private readonly receivers = new Map<NodeId, (from: NodeId, message: PeerMessage) => void>();
  dropping: (from: NodeId, to: NodeId, message: PeerMessage) => boolean = () => false;
  delivered = 0;

  constructor(
    readonly clock: ManualClock,
    readonly delayMs = 1,
  ) {}

  /** The node's sending side; messages for it go to `receive`. */
  join(id: NodeId, receive: (from: NodeId, message: PeerMessage) => void): { send(to: NodeId, message: PeerMessage): void } {
    this.receivers.set(id, receive);
    return {
      send: (to, message) => {
        if (this.dropping(id, to, message)) return;
        this.clock.setTimer(this.delayMs, () => {
          this.delivered++;
          this.receivers.get(to)?.(id, message);
        });
      },
    };
  }
}

/**
 * A userspace TCP proxy for one directed link between two nodes, owned by the
 * chaos runner: the dialing node connects to the proxy (its test-only dial
 * override points there), the proxy connects to the real peer port, and bytes
 * flow through it both ways — unless the link is faulted:
 *
 *   block (hold)   stop forwarding both ways; bytes wait in the sockets (TCP
 *                  backpressure), new connections are accepted and held. Like an
 *                  iptables DROP: nothing arrives, nothing is refused; when the
 *                  block lifts, what waited flows on (if the nodes have not
 *                  given up on the connection by then).
 *   block (reset)  destroy every connection at once and every new one on
 *                  arrival (an iptables REJECT --reject-with tcp-reset).
 *   delay          hold each forward frame (or chunk) for delayMs (+ up to
 *                  jitterMs), never reordering by accident: a TCP stream stays
 *                  in order.
 *   loss, duplicate, reorder (frame-aware links only)
 *                  drop, repeat or swap whole MESSAGE frames of the impulse
 *                  transport (src/transport/README.md) after the handshake, with
 *                  the given probabilities, drawn from the link's seeded Random.
 *                  Nothing else is touched: the preamble, HELLO/WELCOME, PING/PONG
 *                  and snapshot frames pass as they are, and no frame is ever
 *                  cut or corrupted (that would be a different fault).
 *
 * Only the dialer→acceptor direction carries data in the impulse transport
 * (one connection per peer and direction); the other direction carries
 * control frames and passes unchanged except under a block.
 *
 * Bounds: each direction buffers at most `bufferBytesMax` before it stops
 * reading its source; connections per proxy at most `connectionsMax`.
 */
import { type Server, Socket, createServer } from 'node:net';
import type { Random } from '../../src/util/random.js';

export interface LinkFaults {
  readonly blocked: boolean;
  /** How a block behaves: hold (silent drop) or reset. */
  readonly blockMode: 'hold' | 'reset';
  readonly delayMs: number;
  readonly jitterMs: number;
  /** Probabilities per MESSAGE frame (frame-aware links only). */
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly reorderRate: number;
}

export const HEALTHY_LINK: LinkFaults = Object.freeze({ blocked: false, blockMode: 'hold', delayMs: 0, jitterMs: 0, lossRate: 0, duplicateRate: 0, reorderRate: 0 });

export interface LinkProxyStats {
  connections: number;
  resets: number;
  framesForwarded: number;
  framesDropped: number;
  framesDuplicated: number;
  framesReordered: number;
  bytesForwarded: number;
}

export interface LinkProxyOptions {
  /** Where the real peer listens. */
  readonly target: { readonly host: string; readonly port: number };
  /** Randomness for loss, duplication, reordering and jitter (seeded: one fork per link). */
  readonly random: Random;
  /** Parse the impulse transport's frames (needed for loss, duplication, reordering). Default true. */
  readonly frameAware?: boolean;
  readonly listenHost?: string;
  readonly bufferBytesMax?: number;
  readonly connectionsMax?: number;
  readonly name?: string;
  /**
   * For a proxy in front of one node that many nodes dial (a protocol whose
   * peers all use one advertised address, such as etcd's peer URLs): names
   * the dialing node from the first bytes of a connection (e.g. an HTTP
   * header), or undefined while more bytes are needed. Nothing is forwarded
   * upstream until it answers (or `SNIFF_BYTES_MAX` arrived: then the source
   * is unknown). `blockSources` then cuts single directed links.
   */
  readonly sourceOf?: (head: Buffer) => string | undefined;
}

/** Bytes a connection may send before its source must be known. */
const SNIFF_BYTES_MAX = 16 * 1024;

/** The impulse transport's preamble and frame layout (src/transport/frames.ts). */
const PREAMBLE_BYTES = 6;
const FRAME_HEADER_BYTES = 5;
const MESSAGE_FRAME = 4;
/** A swapped frame waits at most this long for a frame to overtake it. */
const REORDER_HOLD_MS = 20;

export class LinkProxy {
  readonly stats: LinkProxyStats = { connections: 0, resets: 0, framesForwarded: 0, framesDropped: 0, framesDuplicated: 0, framesReordered: 0, bytesForwarded: 0 };
  private faultsValue: LinkFaults = HEALTHY_LINK;
  private blockedSources: ReadonlySet<string> = new Set();
  private readonly connections = new Set<ProxiedConnection>();
  private server: Server | undefined;
  private boundPort = 0;

  constructor(readonly options: LinkProxyOptions) {}

  get name(): string {
    return this.options.name ?? `proxy→${this.options.target.host}:${this.options.target.port}`;
  }

  get faults(): LinkFaults {
    return this.faultsValue;
  }

  /** Where dialers connect. */
  get address(): { host: string; port: number } {
    return { host: this.options.listenHost ?? '127.0.0.1', port: this.boundPort };
  }

  async start(port = 0): Promise<void> {
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.options.listenHost ?? '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.boundPort = (server.address() as { port: number }).port;
  }

  /** Replaces the link's faults (fields not given keep their value); a reset block drops every connection now. */
  set(faults: Partial<LinkFaults>): void {
    this.faultsValue = { ...this.faultsValue, ...faults };
    if (this.faultsValue.blocked && this.faultsValue.blockMode === 'reset') {
      for (const connection of [...this.connections]) connection.destroy(), this.stats.resets++;
    }
    for (const connection of this.connections) connection.faultsChanged();
  }

  heal(): void {
    this.blockedSources = new Set();
    this.set(HEALTHY_LINK);
  }

  /** Blocks (hold mode) every connection whose source (`sourceOf`) is in `sources`; the others keep the link's faults. */
  blockSources(sources: Iterable<string>): void {
    this.blockedSources = new Set(sources);
    for (const connection of this.connections) connection.faultsChanged();
  }

  /** The faults of a connection from `source` (undefined: not known yet). */
  faultsFor(source: string | null | undefined): LinkFaults {
    if (typeof source === 'string' && this.blockedSources.has(source)) return { ...this.faultsValue, blocked: true, blockMode: 'hold' };
    return this.faultsValue;
  }

  async close(): Promise<void> {
    for (const connection of [...this.connections]) connection.destroy();
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }

  private accept(socket: Socket): void {
    if (this.connections.size >= (this.options.connectionsMax ?? 64) || (this.faultsValue.blocked && this.faultsValue.blockMode === 'reset')) {
      this.stats.resets++;
      socket.resetAndDestroy();
      return;
    }
    this.stats.connections++;
    const connection = new ProxiedConnection(this, socket, () => this.connections.delete(connection));
    this.connections.add(connection);
  }
}

/** One dialer's connection through the proxy: two pipes. */
class ProxiedConnection {
  private readonly upstream: Socket;
  private readonly forward: Pipe;
  private readonly backward: Pipe;
  private closed = false;
  private connecting = false;
  /** Who dialed (with `sourceOf`): undefined while unknown, null when it cannot be told. */
  source: string | null | undefined;

  constructor(
    readonly proxy: LinkProxy,
    downstream: Socket,
    private readonly onClose: () => void,
  ) {
    // Dialled only once the link is not blocked: under a block the peer must not even see a connection attempt.
    this.upstream = new Socket();
    this.upstream.setNoDelay(true);
    this.source = proxy.options.sourceOf === undefined ? null : undefined;
    const bufferBytesMax = proxy.options.bufferBytesMax ?? 16 << 20;
    const faults = (): LinkFaults => this.faults();
    this.forward = new Pipe(downstream, this.upstream, proxy, faults, proxy.options.frameAware ?? true, bufferBytesMax, this);
    this.backward = new Pipe(this.upstream, downstream, proxy, faults, false, bufferBytesMax, undefined);
    this.connectUpstream();
    for (const socket of [downstream, this.upstream]) {
      socket.on('error', () => this.destroy());
      socket.on('close', () => this.destroy());
    }
  }

  /** This connection's faults: its source's, and held while the source is being sniffed. */
  faults(): LinkFaults {
    if (this.source === undefined) return { ...this.proxy.faults, blocked: true, blockMode: 'hold' };
    return this.proxy.faultsFor(this.source);
  }

  /** Called by the forward pipe with everything received so far, until the source is known. */
  sniff(head: Buffer): void {
    const source = this.proxy.options.sourceOf?.(head);
    if (source === undefined && head.length < SNIFF_BYTES_MAX) return;
    this.source = source ?? null;
    this.faultsChanged();
  }

  faultsChanged(): void {
    this.connectUpstream();
    this.forward.resume();
    this.backward.resume();
  }

  private connectUpstream(): void {
    if (this.connecting || this.faults().blocked) return;
    this.connecting = true;
    this.upstream.connect({ host: this.proxy.options.target.host, port: this.proxy.options.target.port });
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.forward.stop();
    this.backward.stop();
    this.upstream.destroy();
    this.forward.source.destroy();
    this.onClose();
  }
}

interface Queued {
  readonly bytes: Buffer;
  readonly releaseAt: number;
}

/** One direction: reads the source, splits frames when frame-aware, applies the faults, writes the sink in order. */
class Pipe {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly queue: Queued[] = [];
  private queuedBytes = 0;
  private preambleLeft: number;
  private handshakeFramesLeft = 1; // the HELLO is never touched
  private held: { bytes: Buffer; timer: NodeJS.Timeout } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastReleaseAt = 0;
  private sinkBlocked = false;
  private stopped = false;

  private sniffed: Buffer[] | undefined;

  constructor(
    readonly source: Socket,
    private readonly sink: Socket,
    private readonly proxy: LinkProxy,
    private readonly faults: () => LinkFaults,
    private readonly frameAware: boolean,
    private readonly bufferBytesMax: number,
    /** The connection to tell what arrived while its source is unknown (forward pipe only). */
    private readonly sniffer: ProxiedConnection | undefined,
  ) {
    this.preambleLeft = frameAware ? PREAMBLE_BYTES : 0;
    if (sniffer?.source === undefined && sniffer !== undefined) this.sniffed = [];
    source.on('data', (chunk: Buffer) => {
      if (this.sniffed !== undefined) {
        this.sniffed.push(chunk);
        const head = Buffer.concat(this.sniffed);
        this.sniffed = head.length < SNIFF_BYTES_MAX ? [head] : undefined;
        this.sniffer!.sniff(head);
        if (this.sniffer!.source !== undefined) this.sniffed = undefined;
      }
      this.onData(chunk);
    });
    sink.on('drain', () => {
      this.sinkBlocked = false;
      this.flush();
    });
    if (faults().blocked && !this.sniffing()) source.pause();
  }

  /** True while this forward pipe's connection is still being told apart by its first bytes. */
  private sniffing(): boolean {
    return this.sniffer !== undefined && this.sniffer.source === undefined;
  }

  resume(): void {
    if (this.stopped) return;
    this.flush();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.held !== undefined) clearTimeout(this.held.timer);
  }

  private onData(chunk: Buffer): void {
    if (!this.frameAware) {
      this.enqueue(chunk, false);
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      this.splitFrames();
    }
    this.flush();
  }

  /** Takes whole frames off `pending` (and the preamble first). */
  private splitFrames(): void {
    if (this.preambleLeft > 0 && this.pendingBytes >= this.preambleLeft) {
      this.enqueue(this.take(this.preambleLeft), false);
      this.preambleLeft = 0;
    }
    while (this.preambleLeft === 0 && this.pendingBytes >= 4) {
      const head = this.peek(FRAME_HEADER_BYTES);
      if (head.length < 4) return;
      const frameBytes = 4 + head.readUInt32BE(0);
      if (this.pendingBytes < frameBytes) return;
      const frame = this.take(frameBytes);
      const isMessage = frame.length >= FRAME_HEADER_BYTES && frame[4] === MESSAGE_FRAME && this.handshakeFramesLeft === 0;
      if (this.handshakeFramesLeft > 0) this.handshakeFramesLeft--;
      this.enqueue(frame, isMessage);
    }
  }

  private enqueue(bytes: Buffer, isMessage: boolean): void {
    const faults = this.faults();
    const random = this.proxy.options.random;
    const stats = this.proxy.stats;
    if (isMessage && faults.lossRate > 0 && random.next() < faults.lossRate) {
      stats.framesDropped++;
      return;
    }
    const copies = isMessage && faults.duplicateRate > 0 && random.next() < faults.duplicateRate ? 2 : 1;
    if (copies === 2) stats.framesDuplicated++;
    if (isMessage && this.held === undefined && faults.reorderRate > 0 && random.next() < faults.reorderRate) {
      // Hold this frame back until the next one has gone ahead of it (or a short while passed).
      stats.framesReordered++;
      const held = copies === 2 ? Buffer.concat([bytes, bytes]) : bytes;
      this.held = { bytes: held, timer: setTimeout(() => this.releaseHeld(), REORDER_HOLD_MS) };
      return;
    }
    for (let i = 0; i < copies; i++) this.push(bytes);
    if (this.held !== undefined && isMessage) this.releaseHeld();
  }

  private releaseHeld(): void {
    const held = this.held;
    if (held === undefined) return;
    clearTimeout(held.timer);
    this.held = undefined;
    this.push(held.bytes);
    this.flush();
  }

  private push(bytes: Buffer): void {
    const faults = this.faults();
    const jitter = faults.jitterMs > 0 ? this.proxy.options.random.next() * faults.jitterMs : 0;
    // Never earlier than what is ahead of it: the stream stays in order.
    const releaseAt = Math.max(this.lastReleaseAt, performance.now() + faults.delayMs + jitter);
    this.lastReleaseAt = releaseAt;
    this.queue.push({ bytes, releaseAt });
    this.queuedBytes += bytes.length;
    this.proxy.stats.framesForwarded++;
    if (this.queuedBytes + this.pendingBytes > this.bufferBytesMax) this.source.pause();
  }

  /** Writes what is due, unless blocked; schedules the next release. */
  private flush(): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer), (this.timer = undefined);
    if (this.faults().blocked) {
      // While the source is being sniffed, keep reading (the sniffer needs the bytes); otherwise stop.
      if (!this.sniffing()) this.source.pause();
      return;
    }
    const now = performance.now();
    while (this.queue.length > 0 && !this.sinkBlocked) {
      const head = this.queue[0]!;
      if (head.releaseAt > now) {
        this.timer = setTimeout(() => this.flush(), Math.ceil(head.releaseAt - now));
        break;
      }
      this.queue.shift();
      this.queuedBytes -= head.bytes.length;
      this.proxy.stats.bytesForwarded += head.bytes.length;
      if (!this.sink.write(head.bytes)) this.sinkBlocked = true;
    }
    if (!this.sinkBlocked && this.queuedBytes + this.pendingBytes <= this.bufferBytesMax) this.source.resume();
  }

  private peek(count: number): Buffer {
    const first = this.pending[0]!;
    return first.length >= count ? first.subarray(0, count) : Buffer.concat(this.pending).subarray(0, count);
  }

  private take(count: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const taken = all.subarray(0, count);
    const rest = all.subarray(count);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return Buffer.from(taken);
  }
}

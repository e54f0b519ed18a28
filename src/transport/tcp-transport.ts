/**
 * The real `Transport`: TCP between impulse processes (protocol and choices
 * in src/transport/README.md).
 *
 * Use:
 *   const transport = new TcpTransport({ localId: 1, clusterId: 'prod', listenHost: '127.0.0.1',
 *     listenPort: 7100, peers: new Map([[2, '10.0.0.2:7100']]), handlers, logger });
 *   const { port } = await transport.start();   // listening; peers are dialled lazily
 *   transport.send(2, { channel: 'raft', group: 7, body });
 *   ...
 *   await transport.close();
 *
 * One connection per peer and direction: we dial every peer for what we send
 * it (`OutboundPeer`), and every peer dials us for what it sends us
 * (`InboundConnection`). All methods run on the event loop; `send` never
 * throws and never blocks.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import { assert } from '../util/assert.js';
import { ByteRate } from './byte-rate.js';
import { type Clock, SystemClock } from '../util/clock.js';
import { type Random, SeededRandom, freshSeed } from '../util/random.js';
import { Backoff } from './backoff.js';
import { encodeMessageFrame, isValidChannel, isValidGroup } from './envelopes.js';
import { type Hello, type RefusalReason, checkHello, isNodeId } from './handshake.js';
import { InboundConnection, type InboundHost } from './inbound.js';
import { type TcpTransportOptions, type TransportLimits, checkIdentity, resolveLimits } from './options.js';
import { OutboundPeer } from './outbound.js';
import { type HostPort, type Listener, NetSocketFactory, type SocketFactory, parseAddress } from './socket-factory.js';
import { PeerCounters, TransportCounters } from './stats.js';
import type { InboundHandlers, PeerAddress, PeerMessage, Transport, TransportStats } from './transport.js';

interface Peer {
  readonly outbound: OutboundPeer;
  readonly counters: PeerCounters;
}

export class TcpTransport implements Transport {
  readonly localId: NodeId;
  readonly clusterId: string;
  /** Random per instance: tells a restarted process from a second connection of a live one. */
  readonly incarnation: number;
  readonly limits: TransportLimits;
  private readonly snapshotRate: ByteRate;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly logger: Logger;
  private readonly handlers: InboundHandlers;
  private readonly socketFactory: SocketFactory;
  private readonly acceptUnknownPeers: boolean;
  private readonly counters = new TransportCounters();
  private readonly peers = new Map<NodeId, Peer>();
  /** Counters of dialers admitted without being in the address book (acceptUnknownPeers). */
  private readonly strangerCounters = new Map<NodeId, PeerCounters>();
  /** Open (handshake done) inbound connections by node id: at most one per peer. */
  private readonly inbound = new Map<NodeId, InboundConnection>();
  /** Every inbound connection, open or still in its handshake. */
  private readonly inboundAll = new Set<InboundConnection>();
  /** Node ids whose live inbound connection is being probed because another incarnation knocked. */
  private readonly probing = new Set<NodeId>();
  private readonly inboundHost: InboundHost;
  private listener: Listener | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: TcpTransportOptions) {
    checkIdentity(options.localId, options.clusterId);
    this.localId = options.localId;
    this.clusterId = options.clusterId;
    this.limits = resolveLimits(options.limits);
    this.clock = options.clock ?? new SystemClock();
    this.snapshotRate = new ByteRate(this.limits.snapshotSendBytesPerSecondMax, this.limits.snapshotChunkBytesMax, this.clock);
    this.random = options.random ?? new SeededRandom(freshSeed());
    this.incarnation = this.random.int(2 ** 48);
    this.logger = options.logger.child({ component: 'transport', node: options.localId });
    this.handlers = options.handlers;
    this.socketFactory = options.socketFactory ?? new NetSocketFactory();
    this.acceptUnknownPeers = options.acceptUnknownPeers ?? false;
    this.inboundHost = {
      localId: this.localId,
      incarnation: this.incarnation,
      clock: this.clock,
      limits: this.limits,
      logger: this.logger,
      handlers: this.handlers,
      counters: this.counters,
      checkHello: (hello) => this.checkHello(hello),
      certifiedNodeIds: (socket) => this.socketFactory.certifiedNodeIds?.(socket) ?? null,
      admit: (connection, hello, decide) => this.admit(connection, hello, decide),
      countersOf: (id) => this.countersOf(id),
      onClosed: (connection) => this.onInboundClosed(connection),
    };
    this.setPeers(options.peers);
  }

  /** Starts listening. Resolves with the bound address (the real port when `listenPort` was 0). */
  async start(): Promise<HostPort> {
    assert(this.listener === null && this.closing === null, 'TcpTransport.start: called twice or after close');
    const listener = await this.socketFactory.listen(this.options.listenHost, this.options.listenPort, (socket) => this.accept(socket));
    if (this.closing !== null) {
      await listener.close();
      throw new ImpulseError('IMPULSE_ERR_TRANSPORT_CLOSED');
    }
    this.listener = listener;
    this.logger.info({ address: listener.address, incarnation: this.incarnation }, 'transport listening');
    return listener.address;
  }

  /** The bound address; null before `start` resolved. */
  get address(): HostPort | null {
    return this.listener?.address ?? null;
  }

  setPeers(peers: ReadonlyMap<NodeId, PeerAddress>): void {
    const parsed = new Map<NodeId, HostPort>();
    for (const [id, address] of peers) {
      if (id === this.localId) continue;
      if (!isNodeId(id)) throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `transport: peer id ${String(id)} is not a positive integer`);
      parsed.set(id, parseAddress(address));
    }
    if (this.closing !== null) return;
    for (const [id, peer] of this.peers) {
      if (parsed.has(id)) continue;
      peer.outbound.close();
      this.peers.delete(id);
      this.inbound.get(id)?.close(new ImpulseError('IMPULSE_ERR_TRANSPORT_PEER_UNKNOWN', `node ${id} was removed from the address book`));
      this.logger.info({ peer: id }, 'peer removed');
    }
    for (const [id, address] of parsed) {
      const peer = this.peers.get(id);
      if (peer !== undefined) peer.outbound.setAddress(address);
      else this.addPeer(id, address);
    }
  }

  send(to: NodeId, message: PeerMessage): void {
    const peer = this.peers.get(to);
    if (peer === undefined) {
      this.counters.droppedUnknownPeer++;
      return;
    }
    if (!isValidChannel(message.channel) || !isValidGroup(message.group)) {
      this.logger.error({ peer: to, channel: message.channel, group: message.group }, 'send: malformed channel or group; message dropped');
      return peer.counters.drop(String(message.channel).slice(0, 64), 'invalid');
    }
    let frame: Buffer;
    try {
      frame = encodeMessageFrame(message);
    } catch (error) {
      this.logger.error({ err: error, peer: to, channel: message.channel }, 'send: body cannot be encoded; message dropped');
      return peer.counters.drop(message.channel, 'invalid');
    }
    if (frame.length - 4 > this.limits.frameBytesMax) {
      this.logger.warn({ peer: to, channel: message.channel, bytes: frame.length, frameBytesMax: this.limits.frameBytesMax }, 'send: message over the frame limit; dropped');
      return peer.counters.drop(message.channel, 'too-large');
    }
    peer.outbound.send(frame, message.channel);
  }

  sendSnapshot(to: NodeId, header: PeerMessage, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.closing !== null) return Promise.reject(new ImpulseError('IMPULSE_ERR_TRANSPORT_CLOSED'));
    const peer = this.peers.get(to);
    if (peer === undefined) return Promise.reject(new ImpulseError('IMPULSE_ERR_TRANSPORT_PEER_UNKNOWN', `node ${to} is not in the address book`));
    assert(isValidChannel(header.channel) && isValidGroup(header.group), 'sendSnapshot: malformed channel or group', header.channel, header.group);
    return peer.outbound.sendSnapshot(header, chunks);
  }

  stats(): TransportStats {
    const peers: Record<string, ReturnType<PeerCounters['snapshot']>> = {};
    let sent = 0, received = 0, dropped = 0, bytesIn = 0, bytesOut = 0, snapshotsSent = 0, snapshotsReceived = 0;
    for (const [id, peer] of this.peers) {
      const stats = peer.counters.snapshot(peer.outbound.connected, this.inbound.get(id)?.isOpen === true, peer.outbound.queuedMessages, peer.outbound.queuedBytes);
      peers[String(id)] = stats;
      sent += stats.sentMessages;
      received += stats.receivedMessages;
      dropped += stats.droppedMessages;
      bytesIn += stats.bytesIn;
      bytesOut += stats.bytesOut;
      snapshotsSent += stats.snapshotsSent;
      snapshotsReceived += stats.snapshotsReceived;
    }
    const rejectedByReason = Object.fromEntries(this.counters.rejectedByReason);
    return {
      peers,
      sentMessages: sent,
      receivedMessages: received,
      droppedMessages: dropped,
      bytesIn,
      bytesOut,
      droppedUnknownPeer: this.counters.droppedUnknownPeer,
      rejectedConnections: Object.values(rejectedByReason).reduce((sum, count) => sum + count, 0),
      rejectedByReason,
      closedByError: Object.fromEntries(this.counters.closedByError),
      snapshotsSent,
      snapshotsReceived,
      snapshotRateWaits: this.snapshotRate.waits,
      snapshotRateWaitMs: this.snapshotRate.waitedMs,
    };
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const listener = this.listener;
    this.listener = null;
    for (const peer of this.peers.values()) peer.outbound.close();
    const closed = new ImpulseError('IMPULSE_ERR_TRANSPORT_CLOSED', 'the transport closed');
    for (const connection of [...this.inboundAll]) connection.close(closed);
    await listener?.close();
    this.logger.info('transport closed');
  }

  private addPeer(id: NodeId, address: HostPort): void {
    const counters = this.strangerCounters.get(id) ?? new PeerCounters();
    this.strangerCounters.delete(id);
    const outbound = new OutboundPeer(
      {
        peerId: id,
        localId: this.localId,
        clusterId: this.clusterId,
        incarnation: this.incarnation,
        socketFactory: this.socketFactory,
        clock: this.clock,
        backoff: new Backoff(this.random.fork(), { initialMs: this.limits.backoffInitialMs, maxMs: this.limits.backoffMaxMs }),
        limits: this.limits,
        snapshotRate: this.snapshotRate,
        counters,
        transportCounters: this.counters,
        logger: this.logger,
      },
      address,
    );
    this.peers.set(id, { outbound, counters });
  }

  private accept(socket: Socket): void {
    if (this.closing !== null) return void socket.destroy();
    if (this.inboundAll.size - this.inbound.size >= this.limits.inboundPendingMax) {
      this.counters.reject('too-many-pending');
      this.logger.warn({ remote: socket.remoteAddress, pending: this.limits.inboundPendingMax }, 'too many connections in their handshake; refused');
      return void socket.destroy();
    }
    this.inboundAll.add(new InboundConnection(socket, this.inboundHost));
  }

  private checkHello(hello: Hello): RefusalReason | null {
    if (this.closing !== null) return 'closing';
    return checkHello(hello, {
      clusterId: this.clusterId,
      localId: this.localId,
      isKnownPeer: (id) => this.peers.has(id),
      acceptUnknownPeers: this.acceptUnknownPeers,
    });
  }

  /**
   * The duplicate-id rule. A node id has at most one inbound connection:
   *   - none yet (or only a closed one): admit;
   *   - the same incarnation: the dialer reconnected (it has one outbound
   *     connection per peer), so its old connection is dead: replace it;
   *   - another incarnation: either the node restarted and its old connection
   *     has not failed here yet, or a second process claims the same id. Probe
   *     the old connection: if it answers within duplicateProbeTimeoutMs it is
   *     live and the newcomer is refused ('duplicate-id'); otherwise it is
   *     closed and the newcomer (the restarted node) admitted. A third
   *     connection while a probe runs is refused; it retries with backoff.
   */
  private admit(connection: InboundConnection, hello: Hello, decide: (refusal: RefusalReason | null) => void): void {
    const existing = this.inbound.get(hello.from);
    const admitNow = (): void => {
      this.inbound.set(hello.from, connection);
      decide(null);
    };
    if (existing === undefined || existing.isClosed) return admitNow();
    if (existing.incarnation === hello.incarnation) {
      existing.close(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', 'replaced by a newer connection from the same node'));
      return admitNow();
    }
    if (this.probing.has(hello.from)) return decide('duplicate-id');
    this.probing.add(hello.from);
    existing.probe(this.limits.duplicateProbeTimeoutMs, (alive) => {
      this.probing.delete(hello.from);
      if (connection.isClosed) return;
      if (alive && !existing.isClosed) return decide('duplicate-id');
      this.logger.info({ peer: hello.from }, 'the old connection of a restarted peer did not answer; replacing it');
      existing.close(new ImpulseError('IMPULSE_ERR_TRANSPORT_CONNECTION_LOST', 'superseded by a newer incarnation of the node'));
      admitNow();
    });
  }

  private countersOf(id: NodeId): PeerCounters {
    const known = this.peers.get(id);
    if (known !== undefined) return known.counters;
    let counters = this.strangerCounters.get(id);
    if (counters === undefined) {
      counters = new PeerCounters();
      this.strangerCounters.set(id, counters);
    }
    return counters;
  }

  private onInboundClosed(connection: InboundConnection): void {
    this.inboundAll.delete(connection);
    if (connection.peerId !== null && this.inbound.get(connection.peerId) === connection) {
      this.inbound.delete(connection.peerId);
      if (!this.peers.has(connection.peerId)) this.strangerCounters.delete(connection.peerId);
    }
  }
}

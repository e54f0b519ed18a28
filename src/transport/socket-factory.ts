/**
 * Where sockets come from. The transport never calls node:net itself: it asks
 * a `SocketFactory` to dial an address and to listen, and speaks its framing
 * over whatever duplex socket it gets. `NetSocketFactory` is plain TCP; a TLS
 * factory (node:tls, mutual authentication, issue #16) or a test hook that
 * counts writes or injects faults replaces it without touching the framing.
 * A chaos proxy (issue #11) needs nothing here: point a peer's address at the
 * proxy, and the handshake still checks, end to end, that the node behind it
 * is the one meant.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { ImpulseError } from '../errors.js';
import type { NodeId } from '../raft/types.js';
import type { PeerAddress } from './transport.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface Listener {
  /** The bound address (the real port when listening on port 0). */
  readonly address: HostPort;
  /** Stops accepting; resolves once the listening socket is closed (accepted sockets are the caller's). */
  close(): Promise<void>;
}

export interface SocketFactory {
  /**
   * Opens a connection to `address`; resolves once bytes can flow both ways
   * (for TLS: after the TLS handshake). Rejects on failure, or when `signal`
   * aborts (the transport's connect timeout); then no socket is left open.
   */
  connect(address: HostPort, signal: AbortSignal): Promise<Socket>;
  /** Listens on `host:port` (port 0 picks a free one) and hands every accepted, ready socket to `onConnection`. */
  listen(host: string, port: number, onConnection: (socket: Socket) => void): Promise<Listener>;
  /**
   * The node ids the peer at the other end of `socket` (one this factory made
   * or accepted) is certified to be, e.g. by its TLS certificate. Absent
   * (plain TCP): any id may be claimed. Present: the handshake refuses a peer
   * claiming an id not in the list (tls-socket-factory.ts).
   */
  certifiedNodeIds?(socket: Socket): readonly NodeId[];
}

/** Plain TCP through node:net. */
export class NetSocketFactory implements SocketFactory {
  connect(address: HostPort, signal: AbortSignal): Promise<Socket> {
    return whenReady(netConnect({ host: address.host, port: address.port }), 'connect', signal, (error) => error);
  }

  listen(host: string, port: number, onConnection: (socket: Socket) => void): Promise<Listener> {
    return new Promise((resolve, reject) => {
      const server: Server = createServer({ noDelay: true }, onConnection);
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const bound = server.address();
        const address = typeof bound === 'object' && bound !== null ? { host: bound.address, port: bound.port } : { host, port };
        resolve({ address, close: () => new Promise<void>((done) => server.close(() => done())) });
      });
    });
  }
}

/**
 * Resolves with `socket` once it emits `readyEvent` ('connect', or 'secureConnect' for TLS).
 * Rejects with `describe(error)` on an error, or when `signal` aborts; either
 * way the socket is destroyed, so a failed dial leaves nothing open.
 */
export function whenReady<S extends Socket>(socket: S, readyEvent: string, signal: AbortSignal, describe: (error: Error & { code?: string }) => Error): Promise<S> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      socket.destroy();
      reject(new Error('connect aborted'));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once(readyEvent, () => {
      signal.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.once('error', (error: Error & { code?: string }) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(describe(error));
    });
  });
}

/**
 * Parses "host:port" ("[::1]:7000" for IPv6). Throws IMPULSE_ERR_CONFIG_INVALID
 * for anything else, with the address in the message.
 */
export function parseAddress(address: PeerAddress): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || !(port >= 1 && port <= 65535)) {
    throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `peer address ${JSON.stringify(address)} is not host:port (IPv6 in brackets, port 1-65535)`);
  }
  return { host: match[1] ?? match[2]!, port };
}

/** The inverse of parseAddress. */
export function formatAddress(address: HostPort): PeerAddress {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/**
 * TEST-ONLY. A per-peer dial-address override: the member dials `via` where
 * its address book says `target`, so a chaos run can put a proxy of its own
 * on every directed link (testkit/chaos/proxy.ts). Peers are named by the peer
 * address they advertise (unique per member); the transport's handshake still
 * checks, end to end, that the node behind the proxy is the one meant.
 *
 *   impulse serve ... --test-dial-via 127.0.0.1:7172=127.0.0.1:41002,127.0.0.1:7173=127.0.0.1:41003
 *
 * Off unless that flag is given. It wraps the `SocketFactory` seam of the
 * transport, so nothing else in the product knows about it.
 */
import type { Socket } from 'node:net';
import { configInvalid } from '../util/config-values.js';
import { type HostPort, type Listener, NetSocketFactory, type SocketFactory, parseAddress } from '../transport/socket-factory.js';
import type { NodeId } from '../raft/types.js';

/** Most overrides in one flag (one per peer; a cluster has a handful). */
const OVERRIDES_MAX = 64;

/** "target=via,..." → target "host:port" → where to dial instead. Throws IMPULSE_ERR_CONFIG_INVALID on anything malformed. */
export function parseDialVia(text: string): Map<string, HostPort> {
  const overrides = new Map<string, HostPort>();
  const parts = text.split(',').map((part) => part.trim()).filter((part) => part !== '');
  if (parts.length > OVERRIDES_MAX) throw configInvalid(`--test-dial-via names more than ${OVERRIDES_MAX} peers`);
  for (const part of parts) {
    const [target, via, extra] = part.split('=');
    if (target === undefined || via === undefined || extra !== undefined) throw configInvalid(`--test-dial-via entries look like 127.0.0.1:7172=127.0.0.1:41002; got ${JSON.stringify(part)}`);
    const key = addressKey(parseOrInvalid(target));
    if (overrides.has(key)) throw configInvalid(`--test-dial-via names ${target} twice`);
    overrides.set(key, parseOrInvalid(via));
  }
  return overrides;
}

export class DialViaSocketFactory implements SocketFactory {
  /** The inner factory's (TLS: the peer's certificate), present only when it has one: absent means any id may be claimed. */
  readonly certifiedNodeIds?: (socket: Socket) => readonly NodeId[];

  constructor(
    private readonly overrides: ReadonlyMap<string, HostPort>,
    private readonly inner: SocketFactory = new NetSocketFactory(),
  ) {
    const certified = inner.certifiedNodeIds?.bind(inner);
    if (certified !== undefined) this.certifiedNodeIds = certified;
  }

  connect(address: HostPort, signal: AbortSignal): Promise<Socket> {
    return this.inner.connect(this.overrides.get(addressKey(address)) ?? address, signal);
  }

  listen(host: string, port: number, onConnection: (socket: Socket) => void): Promise<Listener> {
    return this.inner.listen(host, port, onConnection);
  }
}

function addressKey(address: HostPort): string {
  return `${address.host.toLowerCase()}:${address.port}`;
}

function parseOrInvalid(address: string): HostPort {
  try {
    return parseAddress(address.trim());
  } catch (error) {
    throw configInvalid(`--test-dial-via: ${(error as Error).message}`);
  }
}

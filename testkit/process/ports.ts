/**
 * Free TCP ports on 127.0.0.1 for tests that must name a port before the
 * process that listens on it starts (a cluster's `--initial-cluster`). Each
 * port is probed (listened on, then closed) and the caller binds it soon after.
 *
 * The ports are drawn at random from below the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range), which the kernel never hands out
 * by itself: a port the OS picked (listen on 0) could be given to any other
 * socket listening on 0, or to an outgoing connection, between the probe and
 * the bind — that failed a test once (EADDRINUSE) with another test file running
 * beside it. Below that range only another probe of the same number can take
 * it. Where the range cannot be read, or no candidate is free, the OS picks.
 */
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type AddressInfo, type Server, createServer } from 'node:net';

const PROBE_LOW_PORT = 20_000;
const PROBE_TRIES_MAX = 50;

/** The lowest port of the kernel's ephemeral range, or undefined where it cannot be read (not Linux). */
function ephemeralLow(): number | undefined {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > PROBE_LOW_PORT + 1000 ? low : undefined;
  } catch {
    return undefined;
  }
}

function listen(port: number, host: string): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, host, () => resolve(server));
  });
}

/** A listening probe on a free port below the ephemeral range (or on one the OS picks); `taken` are not tried. */
async function probe(host: string, taken: ReadonlySet<number>): Promise<Server> {
  const high = ephemeralLow();
  for (let attempt = 0; high !== undefined && attempt < PROBE_TRIES_MAX; attempt++) {
    const port = randomInt(PROBE_LOW_PORT, high);
    if (taken.has(port)) continue;
    const server = await listen(port, host);
    if (server !== undefined) return server;
  }
  const server = await listen(0, host);
  if (server === undefined) throw new Error(`no free port on ${host}`);
  return server;
}

/** `count` distinct free ports. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: Server[] = [];
  const taken = new Set<number>();
  // All held open at once, so the ports are distinct.
  for (let i = 0; i < count; i++) {
    const server = await probe(host, taken);
    servers.push(server);
    taken.add((server.address() as AddressInfo).port);
  }
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return [...taken];
}

/**
 * Free TCP ports on 127.0.0.1 for tests that must name a port before the
 * process that listens on it starts (a cluster's `--initial-cluster`), and
 * that listen on it again after a restart.
 *
 * The ports come from LOW..HIGH, below Linux's ephemeral range
 * (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default). A port
 * the OS hands out for `listen(0)` comes from the ephemeral range, and so
 * does the local port of every outgoing connection: a member killed by a
 * test and restarted on its port failed to listen (EADDRINUSE) when some
 * client connection on the machine had been given that port as its source
 * port meanwhile. Outside the range only another probe can take it.
 *
 * Each candidate is probed by listening on it; all are held open at once (so
 * they are distinct), then closed for the caller to bind soon after. Another
 * process may take one in between; with random picks from ~22,000 ports that
 * is rare, and the start then fails loudly.
 */
import { createServer, type Server } from 'node:net';

const LOW = 10_000;
const HIGH = 32_000;
/** Candidates tried per requested port before giving up. */
const ATTEMPTS = 50;

/** `count` distinct free ports in LOW..HIGH. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const held: Server[] = [];
  const ports: number[] = [];
  try {
    for (let attempt = 0; ports.length < count; attempt++) {
      if (attempt >= ATTEMPTS * count) throw new Error(`no ${count} free ports found on ${host} in ${LOW}..${HIGH} after ${attempt} tries`);
      const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
      if (ports.includes(port)) continue;
      const server = await listening(port, host);
      if (server === undefined) continue;
      held.push(server);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(held.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

/** A server listening on `port`, or undefined when the port is taken. */
function listening(port: number, host: string): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' || error.code === 'EACCES' ? resolve(undefined) : reject(error)));
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
}

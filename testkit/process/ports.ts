/**
 * Free TCP ports on 127.0.0.1 for tests that must name a port before the
 * process that listens on it starts (a cluster's `--initial-cluster`). The
 * OS picks each port (listen on 0), the probe closes, and the caller binds it
 * soon after; another process could take it in between, which on a test
 * machine is rare enough (the start then fails loudly and the test says so).
 */
import { createServer } from 'node:net';

/** `count` distinct free ports. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<import('node:net').Server>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, host, () => resolve(server));
    })),
  );
  // All held open at once, so the ports are distinct.
  const ports = servers.map((server) => (server.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}

/**
 * The test network itself: hosts reach each other and the test process by
 * their own addresses, a partition cuts exactly the links it names, healing
 * restores them, and destroy leaves nothing behind. Skipped (with the reason)
 * where namespaces cannot be created.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { createNetwork, netnsSupport, type TestNetwork } from './netns.js';

const reason = netnsSupport();

/** Whether `from` can open a TCP connection to `to`'s port within 1 s (bash's /dev/tcp inside the namespace). */
function canConnect(network: TestNetwork, from: number, toIp: string, port: number): boolean {
  try {
    execFileSync('ip', ['netns', 'exec', network.hosts[from]!.namespace, 'timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${toIp}/${port}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('test network of namespaces', { skip: reason }, () => {
  const network = reason === undefined ? createNetwork(3) : undefined!;
  const servers = reason === undefined ? network.hosts.map((host) => host.spawn(process.execPath, ['-e', `require('net').createServer((s) => s.end()).listen(9000, '${host.ip}')`], { stdio: 'ignore' })) : [];
  after(() => {
    for (const server of servers) {
      try {
        process.kill(-server.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
    network?.destroy();
  });

  it('hosts reach each other by address, a partition cuts exactly the named links, heal restores them', async () => {
    const [a, b, c] = network.hosts.map((host) => host.ip) as [string, string, string];
    const deadline = Date.now() + 10_000;
    while (!(canConnect(network, 0, b, 9000) && canConnect(network, 1, c, 9000) && canConnect(network, 2, a, 9000))) {
      assert.ok(Date.now() < deadline, 'servers in the namespaces did not become reachable');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    network.partition([[0], [1, 2]]);
    assert.equal(canConnect(network, 0, b, 9000), false, 'host 0 still reaches host 1');
    assert.equal(canConnect(network, 1, a, 9000), false, 'host 1 still reaches host 0');
    assert.equal(canConnect(network, 1, c, 9000), true, 'hosts 1 and 2 are on the same side');
    network.heal();
    assert.equal(canConnect(network, 0, b, 9000), true);
  });

  it('destroy removes every namespace it created', () => {
    const names = network.hosts.map((host) => host.namespace);
    network.destroy();
    const listed = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const name of names) assert.ok(!listed.includes(name), `${name} is still there`);
  });
});

/**
 * A three-member cluster across three network namespaces, each member on its
 * own IP address (testkit/process/netns.ts): members bind and advertise those
 * addresses; a partition cuts the leader off; the majority side elects a
 * leader and serves writes; the cut-off leader serves nothing linearizable;
 * after healing, all members converge to the same state. Needs root (skipped
 * with the reason otherwise).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { type TestNetwork, createNetwork, netnsSupport } from '../../testkit/process/netns.js';

const reason = netnsSupport();

describe('a cluster across network namespaces', { skip: reason }, () => {
  let network: TestNetwork | undefined;
  let cluster: ProcessCluster | undefined;
  after(async () => {
    await cluster?.close();
    network?.destroy();
  });

  it('members on their own addresses; a partitioned leader is replaced by the majority, and all converge after healing', async (t) => {
    network = createNetwork(3);
    const hosts = network.hosts;
    cluster = await ProcessCluster.startWith(
      hosts.map((host) => ({ id: host.index + 1, host: host.ip, clientPort: 7070, peerPort: 7171 })),
      {
        spawner: (id, command, args) => hosts[id - 1]!.spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }),
        // Non-loopback addresses on a network only this test can reach: protected mode off on purpose (docs/security.md).
        serveArgs: ['--insecure-listen'],
      },
    );
    const leader = await cluster.waitForLeader(20_000);
    for (const id of [1, 2, 3]) await cluster.client(id).put(`before/${id}`, 'x');
    const view = await cluster.client(leader).cluster();
    assert.deepEqual(view.members.map((member) => member.peerUrl), hosts.map((host) => `${host.ip}:7171`), 'members advertise their own addresses');

    network.partition([[leader - 1], [0, 1, 2].filter((index) => index !== leader - 1)]);
    const majority = [1, 2, 3].filter((id) => id !== leader);
    const started = Date.now();
    const newLeader = await cluster.waitForLeader(20_000, majority);
    t.diagnostic(`the majority elected node ${newLeader} ${Date.now() - started} ms after the partition`);
    const { revision } = await cluster.client(majority[0]!).put('during', 'partition');
    assert.ok(revision > 0);
    // The cut-off leader cannot confirm a read: it answers with a retryable refusal (or times out), never stale data.
    const cutOff = await cluster.client(leader, 8000).get('during').then(
      (value) => `value ${String(value)}`,
      (error: { code?: string }) => error.code ?? 'error',
    );
    assert.ok(['IMPULSE_ERR_UNAVAILABLE', 'IMPULSE_ERR_CLIENT_TIMEOUT', 'IMPULSE_ERR_RAFT_READ_ABORTED'].includes(cutOff), `the cut-off member answered ${cutOff}`);

    network.heal();
    await cluster.waitForLeader(20_000);
    await cluster.client(leader).put('after', 'heal');
    const digests = await cluster.settledDigests(30_000);
    assert.equal(new Set([...digests.values()].map((digest) => digest.digest)).size, 1, 'all members converged');
    assert.equal((await cluster.client(leader).get('during'))?.toString(), 'partition');
  });
});

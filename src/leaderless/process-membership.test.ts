/**
 * Membership changes of a real leaderless cluster (`impulse serve
 * --replication leaderless` processes on 127.0.0.1; testkit/process): under
 * writers on two members, a 4th member started with --join is added
 * (`POST /cluster/members`), then member 2 is removed (`DELETE
 * /cluster/members/2`) and stopped. Writes keep being acknowledged
 * throughout; afterwards every acknowledged write is read back with R=all
 * from the three remaining members, and after `repair` their /digest values
 * are equal (N = 3 on three members: every replica holds every key).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { ClusterView } from '../protocol/cluster-view.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';

const SERVE_ARGS = ['--replication', 'leaderless', '--engine', 'lsm'];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The members once the change `answer` reports is over: a membership call
 * answers after at most 10 s, `running` if the change goes on; then
 * `/cluster` of the same member is polled until it is `done`.
 */
async function completed(cluster: ProcessCluster, claimant: number, answer: ClusterView): Promise<number[]> {
  let view = answer;
  const deadline = Date.now() + 120_000;
  while (view.membershipChange?.state === 'running' && Date.now() < deadline) {
    await sleep(200);
    view = (await cluster.view(claimant)) ?? view;
  }
  assert.equal(view.membershipChange?.state, 'done', JSON.stringify(view.membershipChange));
  return view.members.map((member) => member.id);
}

describe('a leaderless cluster of processes changes its membership under writes', () => {
  let cluster: ProcessCluster | undefined;
  after(async () => cluster?.close());

  it('adds a 4th member, then removes one: nothing acknowledged is lost and the digests converge', async () => {
    cluster = await ProcessCluster.start(3, { serveArgs: SERVE_ARGS });
    const c = cluster;
    const acknowledged = new Map<string, string>();
    let stop = false;
    let failures = 0;
    const writer = async (index: number): Promise<void> => {
      for (let seq = 0; !stop; seq++) {
        const key = `m${index}-${seq}`;
        try {
          const response = await fetch(`${c.url(index % 2 === 0 ? 1 : 3)}/kv/${key}?w=2`, { method: 'PUT', body: `v${seq}` });
          if (response.status === 204) acknowledged.set(key, `v${seq}`);
          else failures++;
        } catch {
          failures++;
        }
      }
    };
    const writers = Array.from({ length: 4 }, (_, index) => writer(index));
    let duringJoin = 0;
    try {
      await sleep(500);
      const { clusterId } = (await c.view(1))!;
      const joiner = await c.addJoiner(4, clusterId);
      await c.start(4);
      assert.deepEqual(await completed(c, 1, await c.client(1, 60_000).addMember({ id: 4, peerUrl: joiner.peerUrl })), [1, 2, 3, 4]);
      duringJoin = acknowledged.size;
      await sleep(500);
      assert.deepEqual(await completed(c, 1, await c.client(1, 60_000).removeMember(2)), [1, 3, 4]);
      await c.stop(2);
      await sleep(500);
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    assert.ok(acknowledged.size > duringJoin, `writes were acknowledged after the join (${acknowledged.size}; failures ${failures})`);
    for (const id of [3, 4]) {
      const view = (await c.view(id))!;
      assert.deepEqual(view.members.map((member) => member.id), [1, 3, 4], `member ${id} switched`);
    }

    const entries = [...acknowledged];
    for (let start = 0; start < entries.length; start += 32) {
      await Promise.all(
        entries.slice(start, start + 32).map(async ([key, value]) => {
          let response = await fetch(`${c.url(4)}/kv/${key}?r=all`);
          for (let attempt = 0; response.status === 503 && attempt < 5; attempt++) response = await fetch(`${c.url(4)}/kv/${key}?r=all`);
          assert.equal(response.status, 200, `acknowledged ${key}`);
          assert.equal(await response.text(), value);
        }),
      );
    }
    for (const id of [1, 3, 4]) assert.equal((await fetch(`${c.url(id)}/cluster/repair`, { method: 'POST' })).status, 200);
    const digests = await Promise.all([1, 3, 4].map((id) => fetch(`${c.url(id)}/digest`).then((response) => response.json() as Promise<{ digest: string; bytes: number }>)));
    assert.equal(new Set(digests.map((digest) => digest.digest)).size, 1, `digests ${digests.map((digest) => `${digest.digest.slice(0, 8)}/${digest.bytes}`).join(' ')}`);
  });
});

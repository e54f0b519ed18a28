/**
 * The client's routing table on its own, fed the answers members give
 * (`GET /cluster`, `GET /shards`) through its `RouteSource` seam: the newest
 * map wins; a member's word that it leads beats another member's hearsay; a
 * leader that is not a replica in the newest map is ignored; targets go to
 * the leader, then the replicas in turn once it is forgotten; a member that
 * could not be reached is tried last for a while; a table older
 * than its bound is reloaded in the background (the old one serves
 * meanwhile); a single node (no /cluster) is not sharded; refreshes are
 * coalesced.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ImpulseError } from '../errors.js';
import type { ClusterView } from '../protocol/cluster-view.js';
import type { ShardView, ShardsView } from '../protocol/shard-view.js';
import { type RouteSource, ShardRouter } from './shard-router.js';

const hex = (text: string): string => Buffer.from(text).toString('hex');
const url = (id: number): string => `http://127.0.0.1:${9000 + id}`;

function cluster(ids: readonly number[]): ClusterView {
  return { clusterId: 'c', nodeId: ids[0]!, state: 'running', leader: ids[0]!, term: 1, commitIndex: 1, appliedIndex: 1, members: ids.map((id) => ({ id, clientUrl: url(id), peerUrl: null, role: 'follower', matchIndex: null, lag: null, lastContactMs: null })) };
}

function shard(id: number, start: string, end: string | null, epoch: number, replicas: number[], leader: number | null): ShardView {
  return { id, start: hex(start), end: end === null ? null : hex(end), epoch, replicas, leader, local: leader !== null, appliedIndex: null, keyCount: null, diskBytes: null, sizeBytes: null, reportedSizeBytes: null, requestsPerSecond: null, reportAgeMs: null, proposals: null, quiesced: false };
}

/** Members' answers, by node id; `calls` counts what was asked. */
class FakeMembers implements RouteSource {
  readonly calls: string[] = [];
  constructor(
    public views: Map<number, ShardsView>,
    public members: readonly number[] = [...views.keys()],
  ) {}
  async clusterAt(origin: URL): Promise<ClusterView> {
    this.calls.push(`cluster ${origin.port}`);
    if (this.members.length === 0) throw new ImpulseError('IMPULSE_ERR_ROUTE_NOT_FOUND');
    return cluster(this.members);
  }
  async shardsAt(origin: URL): Promise<ShardsView> {
    this.calls.push(`shards ${origin.port}`);
    const view = this.views.get(Number(origin.port) - 9000);
    if (view === undefined) throw new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE');
    return view;
  }
}

const view = (nodeId: number, version: number, shards: ShardView[]): ShardsView => ({ clusterId: 'c', nodeId, sharded: true, version, reportsFrom: null, shards });

describe('the client shard router', () => {
  it('takes the newest map, and leaders from the members that lead', async () => {
    const members = new FakeMembers(
      new Map([
        // Node 1 has an old map (one shard) and names 3 as leader by hearsay; node 2 says it leads shard 2; node 3 says it leads shard 3, and names 1 for shard 2 by hearsay.
        [1, view(1, 1, [shard(2, '', null, 1, [1, 2, 3], 3)])],
        [2, view(2, 2, [shard(2, '', 'm', 2, [1, 2, 3], 2), shard(3, 'm', null, 2, [1, 2, 3], null)])],
        [3, view(3, 2, [shard(2, '', 'm', 2, [1, 2, 3], 1), shard(3, 'm', null, 2, [1, 2, 3], 3)])],
      ]),
    );
    const router = new ShardRouter(new URL(url(1)), members);
    const left = await router.target(Buffer.from('apple'), 0);
    assert.deepEqual([left?.route, left?.origin.port], [{ shard: 2, epoch: 2 }, '9002']);
    const right = await router.target(Buffer.from('zebra'), 0);
    assert.deepEqual([right?.route, right?.origin.port], [{ shard: 3, epoch: 2 }, '9003']);
    assert.equal(router.mapVersion, 2);
    assert.equal(router.refreshes, 1);
  });

  it('ignores a reported leader that is not a replica, and goes round the replicas once the leader is forgotten', async () => {
    const members = new FakeMembers(new Map([[1, view(1, 3, [shard(2, '', null, 3, [1, 3, 4], 2)])]]), [1, 2, 3, 4]);
    const router = new ShardRouter(new URL(url(1)), members);
    const ports = async (attempts: number): Promise<string[]> => Promise.all(Array.from({ length: attempts }, async (_, attempt) => (await router.target(Buffer.from('k'), attempt))!.origin.port));
    assert.deepEqual(await ports(4), ['9001', '9003', '9004', '9001'], 'no leader known: the replicas in turn');
    members.views.set(1, view(1, 3, [shard(2, '', null, 3, [1, 3, 4], 4)]));
    await router.refresh();
    assert.deepEqual(await ports(3), ['9004', '9001', '9003'], 'the leader first');
    router.forgetLeader(2);
    assert.deepEqual(await ports(1), ['9001']);
  });

  it('tries a member it could not reach last, even while the members still name it leader, until the mark expires', async () => {
    let nowMs = 0;
    // Node 1 leads and is the first replica: forgetting the leader alone would send attempt 0 back to it.
    const members = new FakeMembers(new Map([[2, view(2, 1, [shard(2, '', null, 1, [1, 2, 3], 1)])]]), [1, 2, 3]);
    const router = new ShardRouter(new URL(url(2)), members, { unreachableForMs: 5000, now: () => nowMs });
    const first = (await router.target(Buffer.from('k'), 0))!;
    assert.equal(first.origin.port, '9001');
    router.memberUnreachable(first);
    const ports = async (attempts: number): Promise<string[]> => Promise.all(Array.from({ length: attempts }, async (_, attempt) => (await router.target(Buffer.from('k'), attempt))!.origin.port));
    assert.deepEqual(await ports(3), ['9002', '9003', '9001']);
    await router.refresh(); // node 2 still names 1 as leader
    assert.deepEqual(await ports(3), ['9002', '9003', '9001'], 'a refresh does not put it back in front');
    nowMs = 5000;
    assert.deepEqual(await ports(1), ['9001'], 'tried in its place again once the mark expires');
  });

  it('reloads an old table in the background, serving from the old one meanwhile', async () => {
    let nowMs = 0;
    const members = new FakeMembers(new Map([[1, view(1, 1, [shard(2, '', null, 1, [1], 1)])]]));
    const router = new ShardRouter(new URL(url(1)), members, { tableAgeMaxMs: 1000, now: () => nowMs });
    await router.target(Buffer.from('k'), 0);
    nowMs = 999;
    await router.target(Buffer.from('k'), 0);
    assert.equal(router.refreshes, 1);
    members.views.set(1, view(1, 2, [shard(2, '', 'm', 2, [1], 1), shard(3, 'm', null, 2, [1], 1)]));
    nowMs = 1001;
    assert.deepEqual((await router.target(Buffer.from('z'), 0))?.route, { shard: 2, epoch: 1 }, 'the old table answers while the reload runs');
    assert.equal(router.refreshes, 2);
    await router.refresh(); // joins the one running
    assert.equal(router.refreshes, 2);
    assert.deepEqual((await router.target(Buffer.from('z'), 0))?.route, { shard: 3, epoch: 2 });
  });

  it('routes nothing for a single node or an unsharded cluster, and fails when no member answers', async () => {
    const single = new ShardRouter(new URL(url(1)), new FakeMembers(new Map(), []));
    assert.equal(await single.target(Buffer.from('k'), 0), undefined);
    const unsharded = new ShardRouter(new URL(url(1)), new FakeMembers(new Map([[1, { ...view(1, 1, [shard(1, '', null, 1, [1], 1)]), sharded: false }]])));
    assert.equal(await unsharded.target(Buffer.from('k'), 0), undefined);
    const silent = new FakeMembers(new Map(), [1, 2]);
    silent.clusterAt = async () => {
      throw new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE');
    };
    await assert.rejects(new ShardRouter(new URL(url(1)), silent).target(Buffer.from('k'), 0), (error) => error instanceof ImpulseError && error.code === 'IMPULSE_ERR_CLIENT_UNREACHABLE');
  });
});

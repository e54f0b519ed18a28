import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatShardsView, joinCommand, leaderlessMemberMessage } from './cluster-output.js';
import type { ClusterView } from '../protocol/cluster-view.js';
import type { ShardView } from '../protocol/shard-view.js';

function view(scheme: 'http' | 'https'): ClusterView {
  const member = (id: number) => ({ id, clientUrl: `${scheme}://127.0.0.1:707${id}`, peerUrl: `127.0.0.1:717${id}`, role: 'follower' as const, matchIndex: null, lag: null, lastContactMs: null });
  return { clusterId: '0123456789abcdef', nodeId: 1, state: 'running', leader: 1, term: 2, commitIndex: 5, appliedIndex: 5, members: [member(1), member(2)] };
}

describe('joinCommand', () => {
  it('names the cluster, the members and the new member; adds the TLS files when the members serve HTTPS', () => {
    const plain = joinCommand(view('http'), 3, '127.0.0.1:7173', undefined);
    assert.match(plain, /--node-id 3 .*--join --cluster-id 0123456789abcdef --initial-cluster 1=127\.0\.0\.1:7171,2=127\.0\.0\.1:7172$/);
    assert.doesNotMatch(plain, /--tls-cert/);
    const secure = joinCommand(view('https'), 3, '127.0.0.1:7173', undefined);
    assert.match(secure, /--tls-cert node-3\.crt --tls-key node-3\.key --peer-tls-ca ca\.crt$/);
  });
});

describe('leaderlessMemberMessage', () => {
  it('words a leaderless change (epoch, state, step, what next) and leaves a Raft view to the learner wording', () => {
    const raft = view('http');
    assert.equal(leaderlessMemberMessage(raft, 'add', 3), undefined);
    const change = (state: 'running' | 'done' | 'failed') => ({ ...raft, leader: null, membershipChange: { epoch: 4, members: [1, 2, 3], state, step: state === 'running' ? ('transfer' as const) : ('commit' as const), elapsedMs: 1200, ...(state === 'failed' ? { error: { code: 'IMPULSE_ERR_LEADERLESS_MEMBERSHIP_REJECTED', message: 'member 2 is down', member: 2 } } : {}) } });
    const running = leaderlessMemberMessage(change('running'), 'add', 3)!;
    assert.match(running, /^node 3 joins the leaderless cluster 0123456789abcdef — membership change epoch 4 to members 1,2,3: running \(step transfer, 1200 ms\)\n/);
    assert.match(running, /membershipChange until it says done/);
    assert.doesNotMatch(running, /learner|promote/);
    assert.match(leaderlessMemberMessage(change('done'), 'remove', 2)!, /node 2 leaves .*: done .*\nnode 2 handed its keys to their owners; stop it/);
    const forced = leaderlessMemberMessage(change('done'), 'force-remove', 4)!;
    assert.match(forced, /node 4 leaves .*: done .*\nnode 4 is no longer a member; every member runs an anti-entropy repair/);
    assert.doesNotMatch(forced, /handed its keys/);
    assert.match(leaderlessMemberMessage(change('failed'), 'add', 3)!, /failed \(step commit, 1200 ms\): member 2 is down\n$/);
  });
});

describe('formatShardsView', () => {
  it('prints a line for each merge and each alignment in flight below the table', () => {
    const shard = (id: number, start: string, end: string | null, extra: Partial<ShardView>): ShardView => ({ id, start, end, epoch: 3, replicas: [1, 2, 3], leader: 1, local: true, appliedIndex: 9, keyCount: null, diskBytes: null, sizeBytes: null, reportedSizeBytes: 10, requestsPerSecond: 0, reportAgeMs: 100, proposals: 0, quiesced: false, ...extra });
    const text = formatShardsView({ clusterId: 'abc', nodeId: 1, sharded: true, reportsFrom: 1, version: 7, shards: [shard(2, '', '67', {}), shard(3, '67', '70', { replicas: [2, 3, 4], alignTo: 2 }), shard(4, '70', null, { mergeInto: 3 })] });
    assert.match(text, /\nmerge in flight: shard 4 merges into shard 3\n/);
    assert.match(text, /\naligning for a merge: shard 3's replicas move onto shard 2's\n$/);
    const rollingBack = formatShardsView({ clusterId: 'abc', nodeId: 1, sharded: true, reportsFrom: 1, version: 8, shards: [shard(3, '', '70', {}), shard(4, '70', null, { mergeInto: 3, mergeAgeMs: 61_400, mergeAbort: true })] });
    assert.match(rollingBack, /\nmerge in flight: shard 4 merges into shard 3 \(61 s\), rolling back\n$/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinCommand } from './cluster-output.js';
import type { ClusterView } from '../protocol/cluster-view.js';

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

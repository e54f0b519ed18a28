/**
 * What a member does with bad input and broken parts (real members in one
 * process): a peer that sends garbage bytes, malformed Raft messages and
 * malformed RPC requests; a snapshot stream that breaks off midway; a broken
 * invariant inside the driver (the group fail-stops, the process lives on and
 * says why).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { isImpulseError } from '../errors.js';
import type { KvCommand } from '../kv/command.js';
import { RpcEndpoint } from '../transport/rpc.js';
import { TcpTransport } from '../transport/tcp-transport.js';
import { SystemClock } from '../util/clock.js';
import { SeededRandom } from '../util/random.js';
import { InProcessCluster } from '../../testkit/cluster/in-process.js';
import { ImageStream } from './image-stream.js';

const put = (key: string): KvCommand => ({ ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from('v') }] });

describe('a member facing a misbehaving peer', () => {
  let cluster: InProcessCluster;
  let impostor: TcpTransport | undefined;
  before(async () => {
    cluster = await InProcessCluster.start(3);
  });
  after(async () => {
    await impostor?.close();
    await cluster?.close();
  });

  it('survives garbage bytes, malformed messages and RPCs, and a snapshot stream that breaks off', async () => {
    const leader = await cluster.waitForLeader();
    const victim = [1, 2, 3].find((id) => id !== leader)!;
    const away = [1, 2, 3].find((id) => id !== leader && id !== victim)!;
    const target = cluster.member(victim);
    const address = `${target.peerAddress.host}:${target.peerAddress.port}`;

    // Raw garbage on the peer port: the connection is refused or closed, nothing else happens.
    await new Promise<void>((resolve) => {
      const socket = connect(target.peerAddress.port, target.peerAddress.host, () => socket.end(Buffer.from('GET / HTTP/1.1\r\n\r\n' + 'x'.repeat(1000))));
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });

    // A peer that passes the handshake (as member `away`, stopped for this) and sends nonsense.
    await cluster.stop(away);
    impostor = new TcpTransport({
      localId: away,
      clusterId: target.group.driver.status() && cluster.member(leader).admin.view().clusterId,
      listenHost: '127.0.0.1',
      listenPort: 0,
      peers: new Map([[victim, address]]),
      handlers: { onMessage: () => {}, onSnapshot: () => Promise.reject(new Error('not here')) },
      logger: pino({ level: 'silent' }),
    });
    await impostor.start();
    const invalidBefore = target.group.driver.metrics().messagesInvalid;
    for (const body of [null, 42, 'x', { type: 'append' }, { type: 'vote', from: away, to: victim, term: -1 }, { type: 'snapshot', from: away, to: victim, term: 1 }]) {
      impostor.send(victim, { channel: 'raft', group: 1, body });
    }
    impostor.send(victim, { channel: 'raft', group: 99, body: {} });
    impostor.send(victim, { channel: 'no-such-channel', group: 0, body: {} });
    const rpc = new RpcEndpoint({ transport: impostor, clock: new SystemClock(), random: new SeededRandom(1), logger: pino({ level: 'silent' }) });
    impostor.send(victim, { channel: 'kv-forward', group: 0, body: 'not an envelope' });
    const refusals = await Promise.allSettled([
      rpc.callAsync(victim, 'kv-forward', { g: 1, c: Buffer.from([1, 2, 3]), t: 1000 }, 3000),
      rpc.callAsync(victim, 'kv-forward', { g: 1 }, 3000),
      rpc.callAsync(victim, 'read-index', { g: 7, t: 1000 }, 3000),
      rpc.callAsync(victim, 'cluster-admin', { op: 'explode', id: 1 }, 3000),
    ]);
    for (const refusal of refusals) assert.ok(refusal.status === 'rejected' && isImpulseError(refusal.reason), `a malformed request gets a coded error: ${JSON.stringify(refusal)}`);

    // A snapshot stream that breaks off midway: refused, nothing staged, the member carries on.
    const term = target.group.driver.node.currentTerm;
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(64 * 1024, 7);
      throw new Error('the sender died');
    }
    const header = { channel: 'raft', group: 1, body: { message: { type: 'snapshot', from: away, to: victim, term, snapshot: { index: 5000, term, confState: { voters: [1, 2, 3], learners: [] } } } } };
    await assert.rejects(impostor.sendSnapshot(victim, header, new ImageStream(broken(), () => {})));
    async function* truncated(): AsyncGenerator<Uint8Array> {
      yield Buffer.from([0, 0, 0, 100, 1, 2, 3]); // a frame announcing 100 bytes, then the end
    }
    await assert.rejects(impostor.sendSnapshot(victim, header, truncated()));
    assert.equal(target.group.machine.machine.staged, undefined, 'nothing was staged');

    assert.equal(target.group.state, 'running');
    assert.ok(target.group.driver.metrics().messagesInvalid > invalidBefore, 'the malformed messages were counted');
    rpc.close();
    await impostor.close();
    impostor = undefined;
    await cluster.restart(away);
    const { revision } = await target.service.write(put('after-garbage'));
    await cluster.waitForApplied(revision);
    assert.equal((await target.service.get(Buffer.from('after-garbage')))?.value.toString(), 'v');
  });
});

describe('a broken invariant inside a member', () => {
  let cluster: InProcessCluster | undefined;
  after(async () => cluster?.close());

  it('stops that group only: the process lives on, reports failed with the reason, and refuses requests with a coded error', async () => {
    cluster = await InProcessCluster.start(3);
    const leader = await cluster.waitForLeader();
    const member = cluster.member(leader);
    // A state machine that breaks its contract (one result per entry): the driver asserts.
    Object.assign(member.group.machine, { apply: (_entries: unknown, done: (error: Error | null, results?: unknown[]) => void) => done(null, []) });
    await assert.rejects(member.service.write(put('boom')), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_STOPPED') || isImpulseError(error, 'IMPULSE_ERR_RAFT_OUTCOME_UNKNOWN'));
    assert.equal(member.group.state, 'failed');
    const health = member.service.health();
    assert.equal(health.status, 'failed');
    assert.match(health.reason!, /one result per entry/);
    assert.equal(member.admin.view().state, 'failed');
    await assert.rejects(member.service.write(put('refused')), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_STOPPED'));
    await assert.rejects(member.service.get(Buffer.from('x'), { consistency: 'serializable' }), (error) => isImpulseError(error, 'IMPULSE_ERR_RAFT_STOPPED'));
    // The others elect a new leader and go on.
    const others = [1, 2, 3].filter((id) => id !== leader);
    const next = await cluster.waitForLeader(10_000, others);
    await cluster.member(next).service.write(put('after'));
  });
});

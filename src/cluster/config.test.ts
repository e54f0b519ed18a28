import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isImpulseError } from '../errors.js';
import { pino } from 'pino';
import { SystemClock } from '../util/clock.js';
import { SeededRandom } from '../util/random.js';
import { deriveClusterId, parseClusterConfig, parseInitialCluster } from './config.js';
import { memberHostOptions } from './node-host.js';

const THREE = '1=127.0.0.1:7171,2=127.0.0.1:7172,3=127.0.0.1:7173';

function refused(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONFIG_INVALID') && pattern.test(error.message));
}

describe('cluster configuration', () => {
  it('is absent without --node-id, and cluster flags without it are refused', () => {
    assert.equal(parseClusterConfig({}, '127.0.0.1', 7070), undefined);
    refused(() => parseClusterConfig({ initialCluster: THREE }, '127.0.0.1', 7070), /needs --node-id/);
  });

  it('parses a member of a new three-node cluster with defaults', () => {
    const config = parseClusterConfig({ nodeId: '2', peerPort: '7172', initialCluster: THREE }, '127.0.0.1', 7072)!;
    assert.equal(config.nodeId, 2);
    assert.equal(config.advertisePeer, '127.0.0.1:7172');
    assert.equal(config.advertiseClient, 'http://127.0.0.1:7072');
    assert.equal(config.initialCluster.size, 3);
    assert.equal(config.join, false);
    assert.match(config.clusterId, /^[0-9a-f]{16}$/);
    assert.deepEqual(config.timing, { tickMs: 50, electionTicks: 10, heartbeatTicks: 2, snapshotEntries: 10_000, snapshotCatchUpEntries: 5_000 });
  });

  it('parses the replica-move flags with their defaults and bounds', () => {
    const base = { nodeId: '1', initialCluster: THREE };
    assert.deepEqual(parseClusterConfig(base, '127.0.0.1', 7070)!.moves, { movesMax: 2, memberDeadAfterMs: 300_000, balanceLeaders: true, balanceBytesMin: 64 * 1024 * 1024 });
    assert.deepEqual(parseClusterConfig({ ...base, shardMovesMax: '8', memberDeadAfterMs: '60000', shardBalanceLeaders: 'false' }, '127.0.0.1', 7070)!.moves, { movesMax: 8, memberDeadAfterMs: 60_000, balanceLeaders: false, balanceBytesMin: 64 * 1024 * 1024 });
    assert.equal(parseClusterConfig({ ...base, shardBalanceBytesMin: '0' }, '127.0.0.1', 7070)!.moves.balanceBytesMin, 0);
    refused(() => parseClusterConfig({ ...base, shardBalanceBytesMin: '-1' }, '127.0.0.1', 7070), /--shard-balance-bytes-min/);
    refused(() => parseClusterConfig({ ...base, shardBalanceLeaders: 'no' }, '127.0.0.1', 7070), /--shard-balance-leaders must be true or false/);
    refused(() => parseClusterConfig({ ...base, shardMovesMax: '0' }, '127.0.0.1', 7070), /--shard-moves-max/);
    refused(() => parseClusterConfig({ ...base, shardMovesMax: '65' }, '127.0.0.1', 7070), /--shard-moves-max/);
    // Dead must come after suspect (two election timeouts: 2 × 10 ticks × 50 ms by default).
    refused(() => parseClusterConfig({ ...base, memberDeadAfterMs: '1000' }, '127.0.0.1', 7070), /two election timeouts/);
    refused(() => parseClusterConfig({ shardMovesMax: '3' }, '127.0.0.1', 7070), /--shard-moves-max needs --node-id/);
  });

  it('takes the transaction lock TTL, 10 s by default, 100 ms to 1 h', () => {
    const base = { nodeId: '1', initialCluster: THREE };
    assert.equal(parseClusterConfig(base, '127.0.0.1', 7070)!.txnLockTtlMs, 10_000);
    assert.equal(parseClusterConfig({ ...base, txnLockTtlMs: '2500' }, '127.0.0.1', 7070)!.txnLockTtlMs, 2500);
    for (const bad of ['99', '3600001', '1.5', 'soon']) refused(() => parseClusterConfig({ ...base, txnLockTtlMs: bad }, '127.0.0.1', 7070), /--txn-lock-ttl-ms/);
    refused(() => parseClusterConfig({ txnLockTtlMs: '2000' }, '127.0.0.1', 7070), /--txn-lock-ttl-ms needs --node-id/);
  });

  it('takes the snapshot send rate, 64 MiB/s by default, at least 64 KiB/s, and hands it to the transport', () => {
    const base = { nodeId: '1', initialCluster: THREE };
    const defaults = parseClusterConfig(base, '127.0.0.1', 7070)!;
    assert.equal(defaults.snapshotRateMax, 64 * 1024 * 1024);
    assert.equal(parseClusterConfig({ ...base, snapshotRateMax: '8388608' }, '127.0.0.1', 7070)!.snapshotRateMax, 8 * 1024 * 1024);
    refused(() => parseClusterConfig({ ...base, snapshotRateMax: '1000' }, '127.0.0.1', 7070), /--snapshot-rate-max/);
    refused(() => parseClusterConfig({ snapshotRateMax: '8388608' }, '127.0.0.1', 7070), /--snapshot-rate-max needs --node-id/);
    const host = memberHostOptions(defaults, defaults.initialCluster, { clock: new SystemClock(), random: new SeededRandom(1), logger: pino({ level: 'silent' }) });
    assert.equal(host.transportLimits?.snapshotSendBytesPerSecondMax, 64 * 1024 * 1024);
  });

  it('derives the same cluster id from the same members in any order, another from another token or member list', () => {
    const a = deriveClusterId('impulse', parseInitialCluster(THREE));
    assert.equal(deriveClusterId('impulse', parseInitialCluster('3=127.0.0.1:7173,1=127.0.0.1:7171,2=127.0.0.1:7172')), a);
    assert.notEqual(deriveClusterId('other', parseInitialCluster(THREE)), a);
    assert.notEqual(deriveClusterId('impulse', parseInitialCluster('1=127.0.0.1:7171,2=127.0.0.1:7172,3=127.0.0.1:7174')), a);
  });

  it('refuses bad initial clusters', () => {
    refused(() => parseInitialCluster('1=127.0.0.1:7171,1=127.0.0.1:7172'), /twice/);
    refused(() => parseInitialCluster('1=127.0.0.1:7171,2=127.0.0.1:7171'), /two members/);
    refused(() => parseInitialCluster('a=127.0.0.1:7171'), /look like/);
    refused(() => parseInitialCluster('1=127.0.0.1'), /not host:port/);
    refused(() => parseInitialCluster('1=127.0.0.1:70000'), /not host:port/);
    refused(() => parseClusterConfig({ nodeId: '4', initialCluster: THREE }, '127.0.0.1', 7070), /does not name this member/);
    refused(() => parseClusterConfig({ nodeId: '1' }, '127.0.0.1', 7070), /needs --initial-cluster/);
  });

  it('a joining member needs the cluster id and the current members\' addresses', () => {
    refused(() => parseClusterConfig({ nodeId: '4', join: true, initialCluster: THREE }, '127.0.0.1', 7074), /--cluster-id/);
    refused(() => parseClusterConfig({ nodeId: '4', join: true, clusterId: '0123456789abcdef' }, '127.0.0.1', 7074), /--join needs --initial-cluster/);
    const config = parseClusterConfig({ nodeId: '4', join: true, clusterId: '0123456789abcdef', peerPort: '7174', initialCluster: THREE }, '127.0.0.1', 7074)!;
    assert.equal(config.join, true);
    assert.equal(config.advertisePeer, '127.0.0.1:7174');
    assert.equal(config.clusterId, '0123456789abcdef');
  });

  it('takes split keys for a new sharded cluster, sorted; they are part of the cluster id', () => {
    const plain = parseClusterConfig({ nodeId: '1', initialCluster: THREE }, '127.0.0.1', 7070)!;
    assert.deepEqual(plain.splitKeys, []);
    assert.equal(plain.clusterId, deriveClusterId('impulse', parseInitialCluster(THREE)));
    const sharded = parseClusterConfig({ nodeId: '1', initialCluster: THREE, splitKeys: 'p,g' }, '127.0.0.1', 7070)!;
    assert.deepEqual(sharded.splitKeys.map(String), ['g', 'p']);
    assert.notEqual(sharded.clusterId, plain.clusterId);
    assert.equal(parseClusterConfig({ nodeId: '2', initialCluster: THREE, splitKeys: 'g,p' }, '127.0.0.1', 7070)!.clusterId, sharded.clusterId);
    assert.notEqual(parseClusterConfig({ nodeId: '1', initialCluster: THREE, splitKeys: 'g,q' }, '127.0.0.1', 7070)!.clusterId, sharded.clusterId);
    refused(() => parseClusterConfig({ nodeId: '1', initialCluster: THREE, splitKeys: 'a,,b' }, '127.0.0.1', 7070), /1 to 512 bytes/);
    refused(() => parseClusterConfig({ nodeId: '1', initialCluster: THREE, splitKeys: 'a,b,a' }, '127.0.0.1', 7070), /twice/);
    refused(() => parseClusterConfig({ nodeId: '4', join: true, clusterId: '0123456789abcdef', initialCluster: THREE, splitKeys: 'a' }, '127.0.0.1', 7070), /shard map from the cluster/);
    refused(() => parseClusterConfig({ splitKeys: 'a' }, '127.0.0.1', 7070), /needs --node-id/);
  });

  it('refuses timing that cannot work', () => {
    refused(() => parseClusterConfig({ nodeId: '1', initialCluster: '1=127.0.0.1:7171', electionTicks: '2', heartbeatTicks: '2' }, '127.0.0.1', 7070), /twice/);
    refused(() => parseClusterConfig({ nodeId: '1', initialCluster: '1=127.0.0.1:7171', tickMs: '0' }, '127.0.0.1', 7070), /--tick-ms/);
  });
});

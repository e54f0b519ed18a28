import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { CLI_PATH } from '../process/server-process.js';
import { parseChaosFlags, parseDuration, parseNemesis } from './cli.js';

describe('impulse chaos flags', () => {
  it('parse durations, nemesis families and the defaults', () => {
    assert.equal(parseDuration('30s'), 30);
    assert.equal(parseDuration('10m'), 600);
    assert.equal(parseDuration('45'), 45);
    assert.throws(() => parseDuration('1s'), /5s to 24h/);
    assert.throws(() => parseDuration('ten'), /--duration/);
    assert.deepEqual(parseNemesis('kill,partition,kill'), ['kill', 'partition']);
    assert.equal(parseNemesis('all').length, 7);
    assert.ok(!parseNemesis('all', true).includes('membership') && parseNemesis('all', true).length === 6, 'leaderless: every family but membership');
    assert.deepEqual(parseNemesis('none'), []);
    assert.throws(() => parseNemesis('kill,meteor'), /meteor/);
    const options = parseChaosFlags({ seed: '7' });
    assert.deepEqual(
      { nodes: options.nodes, replication: options.replication, engine: options.engine, durationS: options.durationS, nemesis: options.nemesis, workers: options.workers, seed: options.seed },
      { nodes: 3, replication: 'raft', engine: 'lsm', durationS: 30, nemesis: ['kill', 'pause', 'partition', 'link'], workers: 9, seed: 7 },
    );
  });

  it('refuse what cannot run, with one sentence', () => {
    assert.throws(() => parseChaosFlags({ nodes: '4' }), /3 or 5/);
    assert.throws(() => parseChaosFlags({ replication: 'etcd' }), /--replication must be raft or leaderless/);
    assert.throws(() => parseChaosFlags({ replication: 'leaderless', workload: 'bank' }), /--workload bank needs conditional batches, which --replication leaderless does not offer; use register or set/);
    assert.throws(() => parseChaosFlags({ replication: 'leaderless', nemesis: 'kill,membership' }), /membership nemesis needs membership changes/);
    assert.equal(parseChaosFlags({ replication: 'leaderless', nemesis: 'all', workload: 'set' }).replication, 'leaderless');
    assert.throws(() => parseChaosFlags({ replication: 'leaderless', splitKeys: 'r/2' }), /--split-keys shards a Raft cluster/);
    assert.throws(() => parseChaosFlags({ splitKeys: 'r/2', nemesis: 'membership' }), /a sharded cluster does not offer yet/);
    assert.deepEqual(parseChaosFlags({ splitKeys: 'g,p', nemesis: 'all' }).splitKeys, ['g', 'p']);
    assert.ok(!parseChaosFlags({ splitKeys: 'g', nemesis: 'all' }).nemesis.includes('membership'));
    assert.throws(() => parseChaosFlags({ engine: 'memory' }), /durable engine/);
    assert.throws(() => parseChaosFlags({ net: 'netns', nemesis: 'link' }), /link faults need --net proxy/);
    assert.throws(() => parseChaosFlags({ seed: '-1' }), /--seed/);
  });

  it('exit with status 2 and a sentence on bad flags, without starting anything', () => {
    const result = spawnSync(process.execPath, [CLI_PATH, 'chaos', '--nodes', '4'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /impulse chaos: --nodes must be 3 or 5/);
    const mode = spawnSync(process.execPath, [CLI_PATH, 'chaos', '--replication', 'leaderless', '--workload', 'bank'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(mode.status, 2);
    assert.match(mode.stderr, /impulse chaos: --workload bank needs conditional batches/);
  });
});

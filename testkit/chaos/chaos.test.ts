/**
 * `npm test`'s chaos set: one short seeded run per fault family against a real
 * three-node cluster, each of which must come out VALID (every check holds),
 * with its faults really applied. A failure prints the seed, so
 * `impulse chaos --seed S --nemesis F --duration 12s --workload W` replays the
 * same schedule (docs/chaos.md). The netns run needs root (skipped with the
 * reason otherwise). Longer soaks are for people: docs/chaos.md.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { netnsSupport } from '../process/netns.js';
import { parseHistory } from './history.js';
import { type ChaosOptions, type ChaosResult, describeFailure, runChaos } from './runner.js';
import type { NemesisFamily } from './schedule.js';
import type { WorkloadName } from './workloads.js';

const DURATION_S = 12;

async function run(nemesis: NemesisFamily | NemesisFamily[], workload: WorkloadName, seed: number, extra: Partial<ChaosOptions> = {}): Promise<ChaosResult> {
  const options: ChaosOptions = { nodes: 3, replication: 'raft', engine: 'lsm', durationS: DURATION_S, nemesis: Array.isArray(nemesis) ? nemesis : [nemesis], seed, workload, ...extra };
  const result = await runChaos(options);
  assert.ok(result.valid, describeFailure(result, options));
  assert.ok(result.faults.length >= 1 && result.faults.every((fault) => fault.targets.length > 0 && fault.endS !== undefined), `faults applied and healed: ${JSON.stringify(result.faults)}`);
  assert.ok(result.history.ops.filter((op) => op.status === 'ok').length > 100, 'the workload made progress');
  return result;
}

describe('chaos: one seeded run per fault family (real processes)', { concurrency: false }, () => {
  it('kill -9 of the leader, then of a minority (restarted at each heal) — register, seed 4', async () => {
    const result = await run('kill', 'register', 4);
    assert.ok(result.leaderChanges.length >= 2, 'the leader changed');
  });

  it('SIGSTOP/SIGCONT of a follower, then of the leader, past the election timeout — bank, seed 8', async () => {
    await run('pause', 'bank', 8);
  });

  it('partitions: a ring (with 3 members, a bridge), then the leader isolated — register, seed 8; results written to --out', async () => {
    const out = await mkdtemp(join(tmpdir(), 'impulse-chaos-out-'));
    try {
      const result = await run('partition', 'register', 8, { out });
      const history = parseHistory(await readFile(join(out, 'history.jsonl'), 'utf8'));
      assert.equal(history.length, result.history.ops.length);
      assert.ok(history.every((op) => ['put', 'get', 'cas'].includes(op.op) && (op.ret === null) === (op.status === 'unknown')));
      assert.equal((await readFile(join(out, 'faults.jsonl'), 'utf8')).trim().split('\n').length, result.faults.length);
      assert.match(await readFile(join(out, 'report.html'), 'utf8'), /id="latency-chart"/);
      assert.ok(existsSync(join(out, 'summary.json')) && existsSync(join(out, 'members', 'node-1.log')));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('peer links: loss, then duplication of transport frames — set, seed 4', async () => {
    const result = await run('link', 'set', 4);
    const stats = result.networkStats;
    assert.ok((stats.framesDropped ?? 0) + (stats.framesDuplicated ?? 0) + (stats.framesReordered ?? 0) > 0 || result.faults.some((fault) => fault.description.includes('delay')), JSON.stringify(stats));
  });

  it('clocks: a strobe on one member, then the leader slowed and isolated — register, seed 4', async () => {
    const result = await run('clock', 'register', 4);
    assert.ok(result.faults.some((fault) => fault.description.includes('isolated')));
  });

  it('disks: fsync failing on one member (it fail-stops, restarted at the heal), then slow fsyncs on the leader — register, seed 1', async () => {
    const result = await run('disk', 'register', 1);
    assert.ok(result.faults.some((fault) => fault.description.includes('fsync-error')));
  });

  it('membership: a member replaced, then leadership transferred, each while a partition is in place — register, seed 8', async () => {
    const result = await run('membership', 'register', 8);
    assert.ok(result.faults.some((fault) => fault.notes.some((note) => /replaced/.test(note))), JSON.stringify(result.faults));
  });

  it('network namespaces with iptables partitions (root): a bridge, then halves — register, seed 24', { skip: netnsSupport() ?? false }, async () => {
    await run('partition', 'register', 24, { network: 'netns' });
  });
});

describe('chaos: a sharded Raft cluster (real processes)', { concurrency: false }, () => {
  it('split at r/2 (two data shards): kill -9 of shard 2\'s leader, then shard 3\'s leader isolated — register, seed 10: linearizable per key across the shards', async () => {
    const result = await run(['kill', 'partition'], 'register', 10, { splitKeys: ['r/2'], durationS: 15 });
    assert.deepEqual(result.faults.map((fault) => fault.notes.find((note) => note.startsWith('"the leader"'))?.replace(/: [0-9]+$/, '')), ['"the leader" is the leader of shard 2', '"the leader" is the leader of shard 3']);
    const keys = new Set(result.history.ops.filter((op) => op.status === 'ok').map((op) => op.key));
    assert.ok(keys.has('r/0') && keys.has('r/4'), 'both shards served');
  });
});

// Leaderless clusters (N = members, R = W = 2): every family but membership.
const LEADERLESS_FAMILIES: NemesisFamily[] = ['kill', 'pause', 'partition', 'link', 'clock', 'disk'];

describe('chaos: leaderless clusters (real processes)', { concurrency: false }, () => {
  it('kill -9 of a minority, SIGSTOP of a member, then halves partitioned — causal register, seed 55: no acknowledged put lost, reads see acknowledged puts, replicas converge after repair', async () => {
    const result = await run(LEADERLESS_FAMILIES, 'register', 55, { replication: 'leaderless', durationS: 15 });
    assert.deepEqual(result.faults.map((fault) => fault.kind), ['kill', 'pause', 'partition']);
    assert.deepEqual(result.checks.map((check) => check.name), ['no-lost-writes', 'quorum-reads', 'convergence', 'recovery']);
    assert.ok(result.history.ops.some((op) => op.op === 'get' && op.status === 'ok' && (op.out as string[]).length > 1), 'concurrent puts left siblings');
    assert.ok(result.history.ops.some((op) => op.op === 'put' && op.status === 'ok' && (op.supersedes?.length ?? 0) > 0), 'puts sent the contexts of reads');
  });

  it('fsync failing on one member (it goes read-only, restarted at the heal), then a clock jump on one — set, seed 110, 10 s', async () => {
    const result = await run(LEADERLESS_FAMILIES, 'set', 110, { replication: 'leaderless', durationS: 10 });
    assert.deepEqual(result.faults.map((fault) => fault.kind), ['disk', 'clock']);
    assert.ok(result.faults[0]!.notes.some((note) => /fail-stopped \(its disk failed: read-only/.test(note)), JSON.stringify(result.faults[0]));
  });
});

/**
 * The shard reports the meta leader collects (shard-leads.ts): a peer's
 * answer is checked item by item (a malformed lead, size or rate fails the
 * ask; an answer from a member before sizes were reported is read with null
 * sizes); the reports keep the highest term's lead of each shard, keep a
 * shard's last report while nobody reports it, and drop shards the map no
 * longer has (a new leader's report without a size or a load keeps the last
 * ones; the load's smoothing is shard-load.test.ts); and the `shard-reports`
 * rows a member sends for GET /shards survive the trip and are checked too.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { NodeId } from '../raft/types.js';
import { RpcEndpoint } from '../transport/rpc.js';
import { SeededRandom } from '../util/random.js';
import { ManualClock, ManualNetwork } from '../../testkit/transport/harness.js';
import { type ShardLead, ShardReports, askShardLeads, askShardReports, leadersFromReports, parseShardLead, reportsSnapshot, SHARD_LEADS_CHANNEL, serveShardReports } from './shard-leads.js';

const silent = pino({ level: 'silent' });

function endpoints(): { clock: ManualClock; rpc: (id: NodeId) => RpcEndpoint } {
  const clock = new ManualClock();
  const network = new ManualNetwork(clock);
  const rpcs = new Map<NodeId, RpcEndpoint>();
  for (const id of [1, 2]) {
    const transport = network.join(id, (from, message) => rpcs.get(id)!.onMessage(from, message));
    rpcs.set(id, new RpcEndpoint({ transport, clock, random: new SeededRandom(id), logger: silent }));
  }
  return { clock, rpc: (id) => rpcs.get(id)! };
}

/** Runs `call` while advancing the manual clock until it settles. */
async function settle<T>(clock: ManualClock, call: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let outcome: { value?: T; error?: unknown } | undefined;
  call.then((value) => (outcome = { value }), (error: unknown) => (outcome = { error }));
  for (let i = 0; i < 100 && outcome === undefined; i++) {
    clock.advance(1);
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(outcome !== undefined, 'the call settled');
  return outcome;
}

const lead = (shard: number, term: number, sizeBytes: number | null = null, requestsPerSecond: number | null = null): ShardLead => ({ shard, term, sizeBytes, requestsPerSecond });

describe('shard leads and reports', () => {
  it('parses a lead and refuses malformed ones', () => {
    assert.deepEqual(parseShardLead({ shard: 4, term: 2, sizeBytes: 1234, requestsPerSecond: 5.5 }), lead(4, 2, 1234, 5.5));
    assert.deepEqual(parseShardLead({ shard: 4, term: 2 }), lead(4, 2), 'a member from before sizes were reported');
    for (const bad of [null, 7, 'x', [], { shard: -1, term: 1 }, { shard: 1.5, term: 1 }, { shard: 1, term: '2' }, { shard: 1, term: 1, sizeBytes: -1 }, { shard: 1, term: 1, sizeBytes: 'big' }, { shard: 1, term: 1, requestsPerSecond: Number.NaN }, { shard: 1, term: 1, requestsPerSecond: Infinity }]) {
      assert.equal(parseShardLead(bad), undefined, JSON.stringify(bad));
    }
  });

  it('an ask fails when the peer answers anything but a list of leads', async () => {
    for (const [answer, ok] of [[[{ shard: 3, term: 1, sizeBytes: 10, requestsPerSecond: null }], true], [{ shard: 3 }, false], [[{ shard: 3, term: 1 }, { shard: 'x', term: 1 }], false], [[{ shard: 3, term: 1, sizeBytes: -5 }], false]] as const) {
      const { clock, rpc } = endpoints();
      rpc(2).serve(SHARD_LEADS_CHANNEL, (_from, _body, reply) => reply(null, answer));
      const outcome = await settle(clock, askShardLeads(rpc(1), 2, 50));
      if (ok) assert.deepEqual(outcome.value, [lead(3, 1, 10, null)]);
      else assert.match(String(outcome.error), /something else than a list of leads/, JSON.stringify(answer));
    }
  });

  it('keeps the highest term\'s report of each shard, keeps a silent shard\'s last report, and drops shards gone from the map', () => {
    const reports = new ShardReports();
    reports.record(new Map([[1, [lead(2, 3, 100, 1)]], [2, [lead(2, 4, 200, 2), lead(3, 1, 50, 0)]]]), new Set([2, 3, 4]), 1000);
    assert.deepEqual(reports.get(2), { ...lead(2, 4, 200, 2), leader: 2, reportedAtMs: 1000 }, 'the newer term wins');
    assert.deepEqual(leadersFromReports(new Map([[1, [lead(2, 3)]], [2, [lead(2, 4)]]])), new Map([[2, 2]]));
    reports.record(new Map([[1, [lead(2, 5, 300, 9)]]]), new Set([2, 3]), 2000);
    assert.deepEqual(reports.get(2), { ...lead(2, 5, 300, 9), leader: 1, reportedAtMs: 2000 });
    assert.deepEqual(reports.get(3), { ...lead(3, 1, 50, 0), leader: 2, reportedAtMs: 1000 }, 'no one reported shard 3: its last report stays');
    reports.record(new Map([[3, [lead(2, 6, null, null)]]]), new Set([2, 3]), 2500);
    assert.deepEqual(reports.get(2), { ...lead(2, 6, 300, 9), leader: 3, reportedAtMs: 2500 }, 'a new leader without a count or a load interval keeps the last known size and load');
    const version = reports.version;
    reports.record(new Map(), new Set([2]), 3000);
    assert.ok(reports.version > version, 'every record is a new version (the mover plans again)');
    assert.equal(reports.get(3), undefined, 'shard 3 left the map');
    assert.deepEqual([...reports.all().keys()], [2]);
  });

  it('sends the meta leader\'s reports to another member, and refuses a malformed answer', async () => {
    const reports = new ShardReports();
    reports.record(new Map([[1, [lead(2, 3, 4096, 12)]], [2, [lead(3, 1, null, null)]]]), new Set([2, 3]), 0);
    const { clock, rpc } = endpoints();
    serveShardReports(rpc(2), () => reportsSnapshot(2, reports, clock.now()));
    clock.advance(500);
    const got = await settle(clock, askShardReports(rpc(1), 2, 50));
    assert.equal(got.value!.from, 2);
    const two = got.value!.shards.get(2)!;
    assert.deepEqual({ ...two, ageMs: 0 }, { leader: 1, sizeBytes: 4096, requestsPerSecond: 12, ageMs: 0 });
    assert.ok(two.ageMs >= 500 && two.ageMs < 1000, `age ${two.ageMs}`);
    assert.deepEqual({ ...got.value!.shards.get(3)!, ageMs: 0 }, { leader: 2, sizeBytes: null, requestsPerSecond: null, ageMs: 0 });
    for (const rows of [[[2, 1, -4, 0, 0]], [[2, 1, 4]], [[2, 'x', 4, 0, 0]], 'rows']) {
      const bad = endpoints();
      bad.rpc(2).serve('shard-reports', (_from, _body, reply) => reply(null, { from: 2, rows }));
      assert.match(String((await settle(bad.clock, askShardReports(bad.rpc(1), 2, 50))).error), /shard-reports/, JSON.stringify(rows));
    }
    const none = endpoints();
    serveShardReports(none.rpc(2), () => undefined);
    assert.match(String((await settle(none.clock, askShardReports(none.rpc(1), 2, 50))).error), /does not lead the meta group/);
  });
});

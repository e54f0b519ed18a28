/**
 * The pure parts of the node runtime: the image framing under any cut of the
 * stream, the release of an image's source however the stream ends, the
 * membership's evolution and encodings, and how committed entries become
 * apply entries.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isImpulseError } from '../errors.js';
import type { Entry } from '../raft/types.js';
import { encodeCommand } from '../kv/command.js';
import { TEST_LIMITS } from '../../testkit/cluster/in-process.js';
import { type ShardMap, decodeShardBounds, encodeShardBounds, initialShardMap } from '../shard/shard-map.js';
import { ImageStream, unframeChunks } from './image-stream.js';
import { type TxnCommand, encodeTxnCommand } from '../kv/txn.js';
import { SPLIT_GC_KEYS_MAX, decodeClusterCommand, encodeClusterCommand, planApply } from './log-entries.js';
import {
  EMPTY_MEMBERSHIP,
  REMOVED_ADDRESSES_MAX,
  applyConfChange,
  applyPublish,
  decodeMemberContext,
  decodeMembership,
  encodeMemberContext,
  encodeMembership,
  initialMembership,
  peerAddresses,
} from './membership.js';

async function* from<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

async function collect(iterable: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const item of iterable) out.push(Buffer.from(item));
  return out;
}

/** `bytes` cut at the given (sorted, deduplicated) offsets. */
function cut(bytes: Buffer, offsets: number[]): Buffer[] {
  const points = [...new Set(offsets.map((offset) => offset % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let at = 0;
  for (const point of [...points, bytes.length]) {
    if (point > at) pieces.push(bytes.subarray(at, point));
    at = Math.max(at, point);
  }
  return pieces;
}

describe('image framing', () => {
  it('gives back exactly the chunks, however the transport cuts the stream (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 30 }), async (chunks, offsets) => {
        const framed = Buffer.concat(await collect(new ImageStream(from(chunks), () => {})));
        const back = await collect(unframeChunks(from(cut(framed, offsets)), 300));
        assert.deepEqual(back.map((chunk) => chunk.toString('hex')), chunks.map((chunk) => Buffer.from(chunk).toString('hex')));
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a stream that ends inside a chunk, and a chunk over the bound', async () => {
    const framed = Buffer.concat(await collect(new ImageStream(from([Buffer.alloc(100, 1)]), () => {})));
    await assert.rejects(collect(unframeChunks(from([framed.subarray(0, 50)]), 1000)), (error) => isImpulseError(error, 'IMPULSE_ERR_SNAPSHOT_INVALID') && /inside a chunk/.test(error.message));
    await assert.rejects(collect(unframeChunks(from([framed.subarray(0, 2)]), 1000)), (error) => isImpulseError(error, 'IMPULSE_ERR_SNAPSHOT_INVALID'));
    await assert.rejects(collect(unframeChunks(from([framed]), 99)), (error) => isImpulseError(error, 'IMPULSE_ERR_SNAPSHOT_INVALID') && /over the bound/.test(error.message));
  });

  it('releases its source once: at the end, on a failure, or when dropped before it started', async () => {
    let released = 0;
    await collect(new ImageStream(from([Buffer.alloc(3)]), () => released++));
    assert.equal(released, 1, 'read to the end');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(1);
      throw new Error('disk');
    }
    await assert.rejects(collect(new ImageStream(failing(), () => released++)), /disk/);
    assert.equal(released, 2, 'failed midway');
    const dropped = new ImageStream(from([Buffer.alloc(3)]), () => released++);
    await dropped[Symbol.asyncIterator]().return!();
    await dropped[Symbol.asyncIterator]().return!();
    assert.equal(released, 3, 'dropped before the first chunk, released once');
  });
});

describe('membership', () => {
  const three = initialMembership(new Map([[2, '10.0.0.2:7171'], [1, '10.0.0.1:7171'], [3, '10.0.0.3:7171']]));

  it('follows conf changes: a learner with its addresses, its promotion, a removal remembered with its address', () => {
    const context = encodeMemberContext({ peerUrl: '10.0.0.4:7171', clientUrl: 'http://10.0.0.4:7070' });
    const withLearner = applyConfChange(three, { type: 'add-learner', nodeId: 4, context }, { voters: [1, 2, 3], learners: [4] });
    assert.deepEqual(withLearner.members.get(4), { id: 4, peerUrl: '10.0.0.4:7171', clientUrl: 'http://10.0.0.4:7070' });
    const promoted = applyConfChange(withLearner, { type: 'add-voter', nodeId: 4, context: new Uint8Array(0) }, { voters: [1, 2, 3, 4], learners: [] });
    assert.equal(promoted.members.get(4)?.peerUrl, '10.0.0.4:7171', 'a promotion without context keeps the addresses');
    const removed = applyConfChange(promoted, { type: 'remove-node', nodeId: 2, context: new Uint8Array(0) }, { voters: [1, 3, 4], learners: [] });
    assert.deepEqual([...removed.members.keys()].sort(), [1, 3, 4]);
    assert.deepEqual(removed.removed, [{ id: 2, peerUrl: '10.0.0.2:7171' }]);
    assert.equal(peerAddresses(removed).get(2), '10.0.0.2:7171', 'a removed member stays reachable, to be told it was removed');
    assert.equal(applyPublish(removed, 3, 'http://x:1').members.get(3)?.clientUrl, 'http://x:1');
    assert.equal(applyPublish(removed, 9, 'http://x:1'), removed, 'publishing for a stranger changes nothing');
  });

  it('keeps only the newest removed addresses', () => {
    let membership = initialMembership(new Map([[1, 'a:1']]));
    for (let id = 2; id < REMOVED_ADDRESSES_MAX + 12; id++) {
      membership = applyConfChange(membership, { type: 'add-learner', nodeId: id, context: encodeMemberContext({ peerUrl: `h:${id}`, clientUrl: null }) }, { voters: [1], learners: [id] });
      membership = applyConfChange(membership, { type: 'remove-node', nodeId: id, context: new Uint8Array(0) }, { voters: [1], learners: [] });
    }
    assert.equal(membership.removed.filter((member) => member.peerUrl !== null).length, REMOVED_ADDRESSES_MAX);
    assert.equal(membership.removed.length, REMOVED_ADDRESSES_MAX + 10, 'every removed id is kept');
  });

  it('encodes canonically and decodes what it encoded; refuses damage with a coded error', () => {
    const encoded = encodeMembership(three);
    assert.deepEqual(encodeMembership(decodeMembership(encoded)), encoded);
    assert.deepEqual(decodeMembership(encodeMembership(EMPTY_MEMBERSHIP)).confState, { voters: [], learners: [] });
    for (const bad of ['', '{', '{"v":2}', '{"v":1,"voters":[0],"learners":[],"members":[],"removed":[]}', '{"v":1,"voters":[1],"learners":[],"members":[[1]],"removed":[]}']) {
      assert.throws(() => decodeMembership(Buffer.from(bad)), (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), bad);
    }
    assert.equal(decodeMemberContext(Buffer.from('not json')), undefined);
    assert.equal(decodeMemberContext(new Uint8Array(0)), undefined);
  });
});

describe('committed entries → apply entries', () => {
  const membership = initialMembership(new Map([[1, 'a:1'], [2, 'b:1'], [3, 'c:1']]));
  const normal = (index: number, data: Uint8Array): Entry => ({ kind: 'normal', index, term: 2, data });

  it('no-ops, commands, conf changes and publishes, in order, with the membership each leads to', () => {
    const entries: Entry[] = [
      normal(2, new Uint8Array(0)),
      normal(3, Buffer.from([1, 2, 3])),
      { kind: 'conf-change', index: 4, term: 2, change: { type: 'add-learner', nodeId: 4, context: encodeMemberContext({ peerUrl: 'd:1', clientUrl: null }) }, confState: { voters: [1, 2, 3], learners: [4] } },
      normal(5, encodeClusterCommand({ type: 'publish', nodeId: 4, clientUrl: 'http://d:2' })),
      normal(6, encodeClusterCommand({ type: 'publish', nodeId: 4, clientUrl: 'http://d:2' })),
      normal(7, Buffer.from([0x43, 0x7b])),
    ];
    const plan = planApply(entries, membership);
    assert.deepEqual(plan.entries.map((entry) => entry.type), ['noop', 'command', 'meta', 'meta', 'noop', 'noop']);
    assert.deepEqual(plan.entries.map((entry) => entry.index), [2, 3, 4, 5, 6, 7]);
    assert.equal(plan.membershipChanged, true);
    assert.equal(plan.membership.members.get(4)?.clientUrl, 'http://d:2');
    const last = plan.entries[3]!;
    assert.ok(last.type === 'meta' && last.value !== null);
    assert.deepEqual(decodeMembership(last.value).members.get(4)?.clientUrl, 'http://d:2');
    assert.equal(planApply([normal(2, Buffer.from([1]))], membership).membershipChanged, false);
  });

  it('decodes only well-formed cluster commands', () => {
    assert.deepEqual(decodeClusterCommand(encodeClusterCommand({ type: 'publish', nodeId: 3, clientUrl: 'https://h:1' })), { type: 'publish', nodeId: 3, clientUrl: 'https://h:1' });
    assert.deepEqual(decodeClusterCommand(encodeClusterCommand({ type: 'split-gc', rightId: 4, keysMax: 1024 })), { type: 'split-gc', rightId: 4, keysMax: 1024 });
    const gcBad = [{ type: 'split-gc', rightId: 4, keysMax: 0 }, { type: 'split-gc', rightId: 4, keysMax: SPLIT_GC_KEYS_MAX + 1 }, { type: 'split-gc', rightId: 1, keysMax: 10 }, { type: 'split-gc', rightId: 4 }];
    for (const bad of [{ type: 'publish', nodeId: 0, clientUrl: 'http://h:1' }, { type: 'publish', nodeId: 3, clientUrl: 'h:1' }, { type: 'other', nodeId: 3 }, ...gcBad]) {
      assert.equal(decodeClusterCommand(Buffer.concat([Buffer.from([0x43]), Buffer.from(JSON.stringify(bad))])), undefined);
    }
  });
});

describe('shard map commands', () => {
  const map1 = initialShardMap([Buffer.from('m')], [1, 2, 3]);
  const map2: ShardMap = { ...map1, version: 2 };
  const entry = (index: number, map: ShardMap): Entry => ({ kind: 'normal', index, term: 1, data: encodeClusterCommand({ type: 'shard-map', map }) });

  it('round-trip through the log encoding', () => {
    assert.deepEqual(decodeClusterCommand(encodeClusterCommand({ type: 'shard-map', map: map1 })), { type: 'shard-map', map: map1 });
    const bad = encodeClusterCommand({ type: 'shard-map', map: { ...map1, shards: [] } });
    assert.equal(decodeClusterCommand(bad), undefined);
  });

  it('apply only as the next version: a stale or repeated map is a no-op', () => {
    const plan = planApply([entry(2, map1), entry(3, map1), entry(4, map2), entry(5, map2)], EMPTY_MEMBERSHIP);
    assert.deepEqual(plan.entries.map((e) => e.type), ['meta', 'noop', 'meta', 'noop']);
    assert.equal(plan.shardMap?.version, 2);
    assert.equal(plan.shardMapChanged, true);
    const skipping = planApply([entry(2, map2)], EMPTY_MEMBERSHIP);
    assert.deepEqual(skipping.entries.map((e) => e.type), ['noop']);
    assert.equal(skipping.shardMap, undefined);
    assert.equal(planApply([entry(6, map2)], EMPTY_MEMBERSHIP, map1).shardMap?.version, 2);
  });
});

describe("a shard group's commands against its bounds", () => {
  const bounds = { start: Buffer.from('g'), end: Buffer.from('p') };
  const keys = { bounds, limits: TEST_LIMITS };
  const put = (...names: string[]): Uint8Array => encodeCommand({ ops: names.map((name) => ({ type: 'put' as const, key: Buffer.from(name), value: Buffer.from('v') })) });
  const normal = (index: number, data: Uint8Array): Entry => ({ kind: 'normal', index, term: 2, data });

  it('passes commands inside the bounds on decoded, refuses those with any key outside, and leaves malformed bytes to the key-value layer', () => {
    const plan = planApply([normal(2, put('g', 'o~')), normal(3, put('h', 'p')), normal(4, put('f')), normal(5, Buffer.from([1, 2])), normal(6, new Uint8Array(0))], EMPTY_MEMBERSHIP, undefined, keys);
    assert.deepEqual(plan.entries.map((e) => e.type), ['command', 'refused', 'refused', 'command', 'noop']);
    const [inside, across] = plan.entries;
    assert.ok(inside?.type === 'command' && !(inside.command instanceof Uint8Array), 'decoded once, here');
    assert.ok(across?.type === 'refused' && isImpulseError(across.error, 'IMPULSE_ERR_SHARD_STALE'));
    assert.deepEqual(across.error.details, { start: Buffer.from('g').toString('hex'), end: Buffer.from('p').toString('hex') });
    assert.ok(plan.entries[3]?.type === 'command' && plan.entries[3].command instanceof Uint8Array);
    // Without bounds (the meta group, or a group from before bounds were kept) nothing is checked.
    assert.deepEqual(planApply([normal(2, put('zebra'))], EMPTY_MEMBERSHIP).entries.map((e) => e.type), ['command']);
  });

  it('checks transaction steps against the bounds, and a merge freeze applies while the group holds transaction state (the commit carries it)', () => {
    const txn = (command: TxnCommand): Uint8Array => encodeTxnCommand(command);
    const prepare = (key: string): Uint8Array => txn({ kind: 'prepare', txnId: 't1', primaryKey: Buffer.from('a'), createdAtMs: 0, ops: [{ type: 'put', key: Buffer.from(key), value: Buffer.from('v') }] });
    const abortOutside = txn({ kind: 'abort', txnId: 't1', primaryKey: Buffer.from('z') });
    const plan = planApply([normal(2, prepare('h')), normal(3, prepare('q')), normal(4, abortOutside), normal(5, Buffer.from([2, 0xc1]))], EMPTY_MEMBERSHIP, undefined, keys);
    assert.deepEqual(plan.entries.map((e) => e.type), ['txn', 'refused', 'refused', 'refused']);
    const freeze = normal(9, encodeClusterCommand({ type: 'prepare-merge', leftId: 2, bounds, epoch: 1 }));
    const frozen = planApply([normal(8, prepare('h')), freeze, normal(10, prepare('i'))], EMPTY_MEMBERSHIP, undefined, keys);
    assert.deepEqual(frozen.entries.map((e) => e.type), ['txn', 'meta', 'refused'], 'a prepare earlier in the batch: the freeze applies; a later one is refused (the range is frozen)');
  });

  it('keeps the bounds encoding canonical and refuses stored bounds that are not', () => {
    assert.deepEqual(decodeShardBounds(encodeShardBounds(bounds)), bounds);
    assert.deepEqual(decodeShardBounds(encodeShardBounds({ start: Buffer.alloc(0), end: null })), { start: Buffer.alloc(0), end: null });
    // An empty range is a group a shard merge froze (shard-merge.ts): valid, and no key is inside it.
    assert.deepEqual(decodeShardBounds(Buffer.from('{"start":"67","end":"67"}')), { start: Buffer.from('g'), end: Buffer.from('g') });
    for (const text of ['', '{}', '{"start":"zz","end":null}', '{"start":"70","end":"67"}']) {
      assert.throws(() => decodeShardBounds(Buffer.from(text)), (error) => isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), text);
    }
  });
});

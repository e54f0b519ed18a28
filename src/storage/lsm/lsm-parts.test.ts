/**
 * Unit tests of the lsm engine's parts: Bloom filter, blocks and tables. The WAL has its own file (wal.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isImpulseError } from '../../errors.js';
import { SeededRandom } from '../../util/random.js';
import { MemVfs } from '../../../testkit/vfs/mem-vfs.js';
import { Block } from './block.js';
import { BlockCache } from './block-cache.js';
import { BloomFilterBuilder, bloomHashes, bloomMayContain, probeCountFor, theoreticalFalsePositiveRate } from './bloom.js';
import { TABLE_MISS, TABLE_TOMBSTONE, TABLE_VALUE, TableBuilder, TableIterator, TableReader } from './table.js';

const key = (i: number): Buffer => Buffer.from(`key-${String(i).padStart(8, '0')}`);

describe('lsm bloom filter', () => {
  for (const bitsPerKey of [6, 10, 16]) {
    it(`measures a false-positive rate within 25% of theory at ${bitsPerKey} bits/key, and never a false negative`, () => {
      const keys = 20_000;
      const builder = new BloomFilterBuilder(bitsPerKey);
      for (let i = 0; i < keys; i++) builder.add(key(i));
      const filter = builder.finish();
      const hashes = new Uint32Array(2);
      for (let i = 0; i < keys; i++) {
        bloomHashes(key(i), hashes);
        assert.equal(bloomMayContain(filter, hashes), true, `false negative for key ${i}`);
      }
      const probes = 200_000;
      let falsePositives = 0;
      for (let i = 0; i < probes; i++) {
        bloomHashes(Buffer.from(`absent-${i}`), hashes);
        if (bloomMayContain(filter, hashes)) falsePositives++;
      }
      const measured = falsePositives / probes;
      const theory = theoreticalFalsePositiveRate(keys, (filter.length - 1) * 8, probeCountFor(bitsPerKey));
      assert.ok(Math.abs(measured - theory) <= 0.25 * theory, `measured ${measured}, theory ${theory}`);
    });
  }
});

async function buildTable(vfs: MemVfs, path: string, entries: Array<[Buffer, Buffer | null]>, blockBytes = 256): Promise<TableReader> {
  const builder = new TableBuilder({ blockBytes, restartInterval: 4, bloomBitsPerKey: 10 });
  for (const [k, v] of entries) builder.add(k, v);
  const { image } = builder.finish();
  const file = await vfs.open(path, { create: true, truncate: true });
  await file.write(0, image);
  await file.sync();
  await file.close();
  return TableReader.open(vfs, path, 7, new BlockCache(1 << 20));
}

describe('lsm sstable', () => {
  it('round-trips entries and tombstones through blocks with prefix compression, forward and reverse', async () => {
    const vfs = new MemVfs();
    const entries: Array<[Buffer, Buffer | null]> = [];
    for (let i = 0; i < 500; i++) entries.push([key(i * 2), i % 7 === 0 ? null : Buffer.from(`value-${i}`)]);
    const table = await buildTable(vfs, 't.sst', entries);
    assert.ok(table.blockCount > 10, `several blocks: ${table.blockCount}`);
    const hashes = new Uint32Array(2);
    const out: { value: Buffer | undefined } = { value: undefined };
    for (let i = 0; i < 1000; i++) {
      const k = key(i);
      bloomHashes(k, hashes);
      const present = i % 2 === 0;
      if (!table.mayContain(hashes)) {
        assert.equal(present, false, 'bloom false negative');
        continue;
      }
      const block = await table.block(table.findBlock(k));
      const result = table.searchIn(block, k, out);
      if (!present) assert.equal(result, TABLE_MISS);
      else if ((i / 2) % 7 === 0) assert.equal(result, TABLE_TOMBSTONE);
      else {
        assert.equal(result, TABLE_VALUE);
        assert.equal(out.value!.toString(), `value-${i / 2}`);
      }
    }
    const iterator = new TableIterator(table);
    await iterator.seekFirst();
    const forward: string[] = [];
    while (iterator.valid) {
      forward.push(iterator.key.toString());
      await iterator.next();
    }
    assert.deepEqual(forward, entries.map(([k]) => k.toString()));
    // Every seek variant at every key and between keys, against the sorted list (restart points every 4 keys).
    const sorted = entries.map(([k]) => k.toString());
    for (let i = 0; i < 1001; i++) {
      const probe = key(i);
      const text = probe.toString();
      for (const exclusive of [false, true]) {
        const seek = new TableIterator(table);
        await seek.seekGE(probe, exclusive);
        const expectedGE = sorted.find((k) => (exclusive ? k > text : k >= text));
        assert.equal(seek.valid ? seek.key.toString() : undefined, expectedGE, `seekGE ${text} ${exclusive}`);
        await seek.seekLE(probe, exclusive);
        const expectedLE = [...sorted].reverse().find((k) => (exclusive ? k < text : k <= text));
        assert.equal(seek.valid ? seek.key.toString() : undefined, expectedLE, `seekLE ${text} ${exclusive}`);
        if (seek.valid && expectedLE !== sorted[0]) {
          await seek.prev();
          assert.equal(seek.key.toString(), sorted[sorted.indexOf(expectedLE!) - 1], `prev after seekLE ${text}`);
        }
      }
    }
    await iterator.seekLE(key(501), false);
    assert.equal(iterator.key.toString(), key(500).toString());
    await iterator.seekLE(key(500), true);
    assert.equal(iterator.key.toString(), key(498).toString());
    await iterator.seekGE(key(500), true);
    assert.equal(iterator.key.toString(), key(502).toString());
    await table.close();
  });

  it('reports a flipped bit anywhere in the file as corruption naming the file, never as data', async () => {
    const entries: Array<[Buffer, Buffer | null]> = [];
    for (let i = 0; i < 60; i++) entries.push([key(i), Buffer.from(`value-${i}`)]);
    const clean = new MemVfs();
    await (await buildTable(clean, 'x.sst', entries)).close();
    const size = await clean.size('x.sst');
    const random = new SeededRandom(3);
    for (let offset = 0; offset < size; offset += 1 + random.int(7)) {
      const vfs = new MemVfs();
      const table = await buildTable(vfs, 'x.sst', entries);
      await table.close();
      vfs.flipBit('x.sst', offset, random.int(8));
      try {
        const reopened = await TableReader.open(vfs, 'x.sst', 7, new BlockCache(1 << 20));
        const iterator = new TableIterator(reopened);
        await iterator.seekFirst();
        while (iterator.valid) await iterator.next();
        assert.fail(`flipped bit at offset ${offset} went unnoticed`);
      } catch (error) {
        assert.ok(isImpulseError(error, 'IMPULSE_ERR_ENGINE_CORRUPTION'), `offset ${offset}: ${String(error)}`);
        assert.match((error as Error).message, /x\.sst/);
      }
    }
  });
});

describe('lsm block cache', () => {
  const block = (size: number): Block => {
    const data = Buffer.alloc(size);
    data.writeUInt32LE(1, size - 4); // one restart point at offset 0
    return new Block(data, 'test');
  };

  it('stays within its byte budget and gives referenced blocks a second chance (CLOCK)', () => {
    const cache = new BlockCache(10 * (1000 + 120));
    const shards = [cache.shard(), cache.shard()];
    for (let i = 0; i < 10; i++) shards[0]!.insert(i * 1000, block(1000));
    assert.equal(cache.size, 10);
    // Touch blocks 0..4; the next five inserts must evict the untouched 5..9 first.
    for (let i = 0; i < 5; i++) assert.ok(shards[0]!.get(i * 1000) !== undefined);
    for (let i = 0; i < 5; i++) shards[1]!.insert(i * 1000, block(1000));
    assert.ok(cache.usedBytes <= cache.capacityBytes);
    for (let i = 0; i < 5; i++) assert.ok(shards[0]!.peek(i * 1000) !== undefined, `touched block ${i} was evicted`);
    for (let i = 5; i < 10; i++) assert.equal(shards[0]!.peek(i * 1000), undefined, `untouched block ${i} survived`);
    shards[0]!.release();
    assert.equal(cache.size, 5);
    assert.equal(cache.usedBytes, 5 * 1120);
  });

  it('holds its bound and its bookkeeping through many inserts, hits and releases', () => {
    const random = new SeededRandom(4);
    const cache = new BlockCache(64 * 1024);
    const shards = Array.from({ length: 8 }, () => cache.shard());
    for (let step = 0; step < 20_000; step++) {
      const shard = shards[random.int(shards.length)]!;
      const roll = random.int(10);
      if (roll < 6) shard.insert(random.int(400) * 4096, block(200 + random.int(4000)));
      else if (roll < 9) shard.get(random.int(400) * 4096);
      else if (random.int(50) === 0) shard.release();
      assert.ok(cache.usedBytes <= cache.capacityBytes, `step ${step}: ${cache.usedBytes} bytes`);
    }
    const counted = shards.reduce((sum, shard) => sum + shard.entries.size, 0);
    assert.equal(cache.size, counted);
    assert.equal(cache.usedBytes, shards.reduce((sum, shard) => sum + [...shard.entries.values()].reduce((bytes, entry) => bytes + entry.bytes, 0), 0));
  });
});

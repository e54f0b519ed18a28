import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type ErrorCode, ImpulseError, isImpulseError } from '../errors.js';
import type { KvCommand, KvLimits } from '../kv/command.js';
import { LsmEngine } from '../storage/lsm/lsm-engine.js';
import { READ_NOT_SYNC } from './kv-service.js';
import { openLocalKvService } from './open-local.js';
import type { LocalKvService } from './local-kv-service.js';

const limits: KvLimits = { keyBytesMax: 256, valueBytesMax: 4096, batchOpsMax: 100, batchBytesMax: 1 << 20, rangeLimitMax: 1000 };
const b = (text: string): Buffer => Buffer.from(text);
const put = (key: string, value: string, condition?: { ifRevision: number } | { ifAbsent: true }): KvCommand['ops'][number] => ({
  type: 'put',
  key: b(key),
  value: b(value),
  ...(condition ? { condition } : {}),
});

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<ImpulseError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return isImpulseError(error, code);
  });
  return caught as ImpulseError;
}

describe('LocalKvService', () => {
  const dirs: string[] = [];
  const services: LocalKvService[] = [];
  after(async () => {
    for (const service of services) await service.close().catch(() => undefined);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  async function open(engine = 'memory', extra: { writeQueueBytesMax?: number; dir?: string } = {}): Promise<{ service: LocalKvService; dir: string }> {
    const dir = extra.dir ?? (await mkdtemp(join(tmpdir(), `impulse-service-${engine}-`)));
    if (extra.dir === undefined) dirs.push(dir);
    const service = await openLocalKvService({ engine, dataDir: join(dir, engine), sync: 'fsync', limits, ...(extra.writeQueueBytesMax ? { writeQueueBytesMax: extra.writeQueueBytesMax } : {}) });
    services.push(service);
    return { service, dir };
  }

  it('answers getSync as get does: the revision and value, undefined when absent; bad input throws', async () => {
    for (const engine of ['memory', 'leveldb', 'lsm', 'btree']) {
      const { service } = await open(engine);
      await service.write({ ops: [put('k', 'v1')] });
      const { revision } = await service.write({ ops: [put('k', 'v2')] });
      const now = service.getSync(b('k'));
      assert.notEqual(now, READ_NOT_SYNC, `${engine}: a just-written key is in memory (memtable, cached pages)`);
      assert.deepEqual(now, await service.get(b('k')));
      assert.deepEqual(now, { revision, value: b('v2') });
      assert.equal(service.getSync(b('absent'), { consistency: 'serializable' }), undefined);
      assert.throws(() => service.getSync(b('')), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_KEY_EMPTY'));
      assert.throws(() => service.getSync(b('k'), { consistency: 'eventual' as never }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_QUERY_INVALID'));
    }
  });

  it('answers getSyncLatin1 as getSync does for the same bytes, any byte, and refuses what getSync refuses', async () => {
    for (const engine of ['memory', 'leveldb', 'lsm', 'btree']) {
      const { service } = await open(engine);
      const keys = [b('k'), Buffer.from([0x00, 0x7f, 0x80, 0xe9, 0xff]), b('z'), Buffer.alloc(limits.keyBytesMax, 0xfe)];
      for (const [index, key] of keys.entries()) await service.write({ ops: [{ type: 'put', key, value: b(`v${index}`) }] });
      await service.write({ ops: [{ type: 'del', key: b('z') }] });
      for (const key of [...keys, b('absent'), Buffer.from([0xff])]) {
        const latin1 = service.getSyncLatin1(key.toString('latin1'));
        assert.notEqual(latin1, READ_NOT_SYNC, `${engine}: a just-written key is in memory`);
        assert.deepEqual(latin1, service.getSync(key), `${engine}: key ${key.toString('hex')}`);
      }
      assert.throws(() => service.getSyncLatin1(''), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_KEY_EMPTY'));
      assert.throws(() => service.getSyncLatin1('k'.repeat(limits.keyBytesMax + 1)), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_KEY_TOO_LARGE'));
    }
  });

  /** Starts `count` writes as requests on separate connections would: each from its own callback, all in the same phase of one turn. */
  function writesInOneTurn(service: LocalKvService, prefix: string, count: number): Promise<Promise<{ revision: number }>[]> {
    return new Promise((resolve) => {
      const started: Promise<{ revision: number }>[] = [];
      for (let i = 0; i < count; i++) {
        setImmediate(() => {
          started.push(service.write({ ops: [put(`${prefix}-${i}`, 'v')] }));
          if (started.length === count) resolve(started);
        });
      }
    });
  }

  it('applies the writes of one event-loop turn as one group, even on an engine that applies at once (memory)', async () => {
    const { service } = await open('memory');
    // The first turn's first write finds the service idle and goes alone; the other nine wait for the end of the turn.
    const first = await writesInOneTurn(service, 'first', 10);
    assert.deepEqual((await Promise.all(first)).map((write) => write.revision), Array.from({ length: 10 }, (_, i) => i + 1));
    let status = await service.status();
    assert.equal(status.figures['apply_groups'], 2, 'the lone first write, then the rest of its turn together');
    // Writers are arriving together now: a whole turn's writes form one group, the first one waiting for the others.
    const second = await writesInOneTurn(service, 'second', 10);
    assert.deepEqual((await Promise.all(second)).map((write) => write.revision), Array.from({ length: 10 }, (_, i) => i + 11));
    status = await service.status();
    assert.equal(status.figures['apply_groups'], 3, 'a write started alone, ahead of the rest of its turn');
    assert.equal(status.figures['apply_group_writes'], 20);
  });

  it('applies a lone write at once, without waiting for the event loop turn to end (memory)', async () => {
    const { service } = await open('memory');
    for (let i = 1; i <= 5; i++) {
      // One writer, one write at a time, as a client on one connection: each turn has one write.
      await new Promise((resolve) => setImmediate(resolve));
      let turnEnded = false;
      setImmediate(() => {
        turnEnded = true;
      });
      assert.equal((await service.write({ ops: [put(`lone-${i}`, 'v')] })).revision, i);
      assert.equal(turnEnded, false, `write ${i} waited for the end of its turn`);
    }
    const status = await service.status();
    assert.equal(status.figures['apply_groups'], 5);
  });

  it('numbers writes with revisions and honours ifRevision / ifAbsent; a failed condition changes nothing', async () => {
    const { service } = await open();
    const first = await service.write({ ops: [put('k', 'v1', { ifAbsent: true })] });
    assert.equal(first.revision, 1);
    assert.deepEqual(await service.get(b('k')), { value: b('v1'), revision: 1 });
    const failed = await rejectsWith(service.write({ ops: [put('k', 'again', { ifAbsent: true })] }), 'IMPULSE_ERR_PRECONDITION_FAILED');
    assert.deepEqual(failed.details, { op: 0, key: 'k', revision: 1 });
    const second = await service.write({ ops: [put('k', 'v2', { ifRevision: 1 })] });
    assert.equal(second.revision, 3); // the failed write used index 2 as well: revisions are log indexes, not per key
    await rejectsWith(service.write({ ops: [{ type: 'del', key: b('k'), condition: { ifRevision: 1 } }] }), 'IMPULSE_ERR_PRECONDITION_FAILED');
    assert.deepEqual(await service.get(b('k')), { value: b('v2'), revision: 3 });
    const deleted = await service.write({ ops: [{ type: 'del', key: b('k'), condition: { ifRevision: 3 } }] });
    assert.equal(deleted.revision, 5);
    assert.equal(await service.get(b('k')), undefined);
    const absent = await rejectsWith(service.write({ ops: [put('k', 'x', { ifRevision: 3 })] }), 'IMPULSE_ERR_PRECONDITION_FAILED');
    assert.equal(absent.details['revision'], null);
  });

  it('applies a batch with conditions all-or-nothing, and names the failing op', async () => {
    const { service } = await open();
    const { revision } = await service.write({ ops: [put('a', '1'), put('b', '1')] });
    const failed = await rejectsWith(service.write({ ops: [put('a', '2', { ifRevision: revision }), put('c', '2', { ifAbsent: true }), put('b', '2', { ifRevision: revision + 5 })] }), 'IMPULSE_ERR_PRECONDITION_FAILED');
    assert.deepEqual(failed.details, { op: 2, key: 'b', revision });
    assert.deepEqual((await service.range({ limit: 10 })).map((item) => `${item.key}=${item.value}@${item.revision}`), [`a=1@${revision}`, `b=1@${revision}`]);
    const binary = await rejectsWith(service.write({ ops: [{ type: 'put', key: Buffer.from([0xff, 0x00]), value: b('x'), condition: { ifRevision: 9 } }] }), 'IMPULSE_ERR_PRECONDITION_FAILED');
    assert.deepEqual(binary.details, { op: 0, key: '/wA=', keyEncoding: 'base64', revision: null });
  });

  it('applies a write retried with the same session once, and answers the retry with the first revision', async () => {
    const { service } = await open();
    const command: KvCommand = { ops: [put('counter', 'x')], session: { clientId: 'client-1', seq: 1 } };
    const [one, two] = await Promise.all([service.write(command), service.write(command)]);
    assert.deepEqual(one, two);
    await service.write({ ops: [put('other', 'y')] });
    assert.deepEqual(await service.write(command), one);
    assert.equal((await service.get(b('counter')))?.revision, one.revision);
    assert.equal((await service.status()).sessions, 1);
  });

  it('groups concurrent writers into few applies, each write with its own revision', async () => {
    const { service } = await open('lsm');
    const writes = await Promise.all(Array.from({ length: 300 }, (_, i) => service.write({ ops: [put(`key-${i}`, `value-${i}`)] })));
    const revisions = writes.map((write) => write.revision).sort((x, y) => x - y);
    assert.deepEqual(revisions, Array.from({ length: 300 }, (_, i) => i + 1));
    const status = await service.status();
    assert.equal(status.figures['apply_group_writes'], 300);
    assert.ok((status.figures['apply_groups'] ?? 0) < 100, `${status.figures['apply_groups']} groups for 300 concurrent writes`);
    assert.equal(status.keyCount ?? 300, 300);
    assert.equal(status.appliedIndex, 300);
  });

  it('keeps revisions and sessions across a restart of a durable store', async () => {
    const { service, dir } = await open('lsm');
    const command: KvCommand = { ops: [put('k', 'v')], session: { clientId: 'c', seq: 7 } };
    const first = await service.write(command);
    await service.write({ ops: [put('k2', 'v')] });
    await service.close();
    const { service: reopened } = await open('lsm', { dir });
    assert.deepEqual(await reopened.write(command), first); // still deduplicated
    // The deduplicated retry took index 3 as a no-op (every command gets an index, as under Raft).
    assert.equal((await reopened.write({ ops: [put('k3', 'v')] })).revision, 4);
    assert.equal((await reopened.get(b('k')))?.revision, first.revision);
  });

  it('refuses a data directory written by an older impulse and leaves it as it was', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-service-old-'));
    dirs.push(dir);
    const old = new LsmEngine({ dataDir: join(dir, 'lsm') });
    await old.open();
    await old.put(b('user/1'), b('alice'));
    await old.close();
    await rejectsWith(openLocalKvService({ engine: 'lsm', dataDir: join(dir, 'lsm'), sync: 'fsync', limits }), 'IMPULSE_ERR_DATA_FORMAT_UNSUPPORTED');
    const again = new LsmEngine({ dataDir: join(dir, 'lsm') });
    await again.open();
    assert.deepEqual(await again.get(b('user/1')), b('alice'));
    await again.close();
  });

  it('bounds the write queue, refuses bad input before queueing, and finishes queued writes on close', async () => {
    const { service } = await open('memory', { writeQueueBytesMax: 10_000 });
    const big = (i: number): KvCommand => ({ ops: [put(`big-${i}`, 'x'.repeat(4000))] });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => service.write(big(i))));
    assert.ok(results.some((r) => r.status === 'rejected' && isImpulseError(r.reason, 'IMPULSE_ERR_OVERLOADED')));
    assert.ok(results.filter((r) => r.status === 'fulfilled').length >= 2);
    await rejectsWith(service.write({ ops: [put('', 'v')] }), 'IMPULSE_ERR_KEY_EMPTY');
    await rejectsWith(service.write({ ops: [put('k', 'x'.repeat(4097))] }), 'IMPULSE_ERR_VALUE_TOO_LARGE');
    await rejectsWith(service.get(b('k'), { consistency: 'eventual' as never }), 'IMPULSE_ERR_QUERY_INVALID');
    const queued = Array.from({ length: 5 }, (_, i) => service.write({ ops: [put(`late-${i}`, 'v')] }));
    await service.close();
    assert.equal((await Promise.all(queued)).length, 5);
    await rejectsWith(service.write({ ops: [put('k', 'v')] }), 'IMPULSE_ERR_SHUTTING_DOWN');
    assert.equal(service.health().status, 'unavailable');
  });
});

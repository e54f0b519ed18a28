/**
 * The HTTP API on a leaderless service (nodes on the in-memory network):
 * causal reads and writes, 300 with siblings, ranges, and every malformed or
 * unsupported request answered with its code and changing nothing. Also: the
 * peer protocol answers malformed requests with an error, never a crash.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import fc from 'fast-check';
import { ImpulseServer } from '../api/server.js';
import { isImpulseError } from '../errors.js';
import type { RpcDone, RpcHandler } from '../transport/rpc.js';
import { LeaderlessTestNetwork } from '../../testkit/leaderless/network.js';
import { LeaderlessKvService } from './leaderless-kv-service.js';
import { serveReplica } from './peer-link.js';

const LIMITS = { keyBytesMax: 256, valueBytesMax: 4096, batchOpsMax: 10, batchBytesMax: 65536, rangeLimitMax: 10_000 };

describe('the HTTP API in leaderless mode', () => {
  let net: LeaderlessTestNetwork;
  let server: ImpulseServer;
  let base = '';
  before(async () => {
    net = await LeaderlessTestNetwork.open([1, 2, 3]);
    const service = new LeaderlessKvService({ node: net.node(1), limits: LIMITS, engineName: 'memory', clusterId: 'test', logger: pino({ level: 'silent' }), shutdown: async () => undefined });
    server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test' });
    const address = await server.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${address.port}`;
  });
  after(async () => {
    await server.close();
    await net.close();
  });

  const call = async (method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; context: string | null; text: string }> => {
    const response = await fetch(base + path, { method, ...(body !== undefined ? { body } : {}), headers });
    return { status: response.status, context: response.headers.get('impulse-context'), text: await response.text() };
  };
  const code = (reply: { text: string }): string => (JSON.parse(reply.text) as { error: { code: string } }).error.code;

  it('GET answers 404 with a context, 200 with one sibling, 300 with every sibling; a PUT with the context resolves them', async () => {
    const absent = await call('GET', '/kv/x');
    assert.equal(absent.status, 404);
    assert.ok(absent.context?.startsWith('c1.'));
    assert.equal((await call('PUT', '/kv/x', 'one')).status, 204);
    assert.equal((await call('PUT', '/kv/x', 'two')).status, 204);
    const both = await call('GET', '/kv/x?r=all');
    assert.equal(both.status, 300);
    assert.deepEqual((JSON.parse(both.text) as { siblings: { value: string }[] }).siblings.map((s) => s.value).sort(), ['one', 'two']);
    const resolved = await call('PUT', '/kv/x?w=all', 'three', { 'impulse-context': both.context! });
    assert.equal(resolved.status, 204);
    const after = await call('GET', '/kv/x?r=quorum');
    assert.equal(after.status, 200);
    assert.equal(after.text, 'three');
    const head = await fetch(`${base}/kv/x`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const deleted = await call('DELETE', '/kv/x', undefined, { 'impulse-context': after.context! });
    assert.equal(deleted.status, 204);
    assert.equal((await call('GET', '/kv/x?r=all')).status, 404);
  });

  it('binary siblings are base64 with "encoding"; ranges list keys with their siblings', async () => {
    await fetch(`${base}/kv/bin`, { method: 'PUT', body: Buffer.from([0xff, 0x00]) });
    await call('PUT', '/kv/bin', 'text');
    const both = await call('GET', '/kv/bin?r=all');
    assert.equal(both.status, 300);
    const siblings = (JSON.parse(both.text) as { siblings: { value: string; encoding?: string }[] }).siblings;
    assert.ok(siblings.some((s) => s.encoding === 'base64' && s.value === '/wA='));
    const page = JSON.parse((await call('GET', '/kv?prefix=bin')).text) as { items: { key: string; siblings?: string[] }[] };
    assert.equal(page.items.length, 1);
    assert.equal(page.items[0]!.siblings?.length, 2);
  });

  it('malformed or unsupported requests get their code and change nothing', async () => {
    const cases: [string, string, string | undefined, Record<string, string>, number, string][] = [
      ['GET', '/kv/k?r=7', undefined, {}, 400, 'IMPULSE_ERR_QUORUM_INVALID'],
      ['GET', '/kv/k?r=0', undefined, {}, 400, 'IMPULSE_ERR_QUORUM_INVALID'],
      ['GET', '/kv/k?consistency=serializable', undefined, {}, 400, 'IMPULSE_ERR_QUERY_INVALID'],
      ['GET', '/kv/k?r=1&r=2', undefined, {}, 400, 'IMPULSE_ERR_QUERY_INVALID'],
      ['PUT', '/kv/k?w=many', 'v', {}, 400, 'IMPULSE_ERR_QUORUM_INVALID'],
      ['PUT', '/kv/k?r=1', 'v', {}, 400, 'IMPULSE_ERR_QUERY_INVALID'],
      ['PUT', '/kv/k', 'v', { 'impulse-context': 'c1.!!' }, 400, 'IMPULSE_ERR_CONTEXT_INVALID'],
      ['PUT', '/kv/k', 'v', { 'impulse-context': 'made-up' }, 400, 'IMPULSE_ERR_CONTEXT_INVALID'],
      ['PUT', '/kv/k', 'v', { 'if-match': '"1"' }, 400, 'IMPULSE_ERR_LEADERLESS_UNSUPPORTED'],
      ['DELETE', '/kv/k', undefined, { 'if-none-match': '*' }, 400, 'IMPULSE_ERR_LEADERLESS_UNSUPPORTED'],
      ['POST', '/kv/batch', '{"ops":[{"op":"put","key":"a","value":"1"},{"op":"put","key":"b","value":"2"}]}', {}, 400, 'IMPULSE_ERR_LEADERLESS_UNSUPPORTED'],
      ['PUT', '/kv/', 'v', {}, 400, 'IMPULSE_ERR_KEY_EMPTY'],
      ['PUT', `/kv/${'k'.repeat(300)}`, 'v', {}, 413, 'IMPULSE_ERR_KEY_TOO_LARGE'],
      ['PUT', '/kv/k', 'v'.repeat(5000), {}, 413, 'IMPULSE_ERR_VALUE_TOO_LARGE'],
    ];
    for (const [method, path, body, headers, status, expected] of cases) {
      const reply = await call(method, path, body, headers);
      assert.equal(reply.status, status, `${method} ${path}: ${reply.text}`);
      assert.equal(code(reply), expected, `${method} ${path}`);
    }
    assert.equal((await call('GET', '/kv/k?r=all')).status, 404, 'none of them wrote anything');
    assert.equal((await call('GET', '/kv/a')).status, 404);
  });

  it('a single-op batch is a blind write; session headers are accepted and ignored', async () => {
    const session = { 'impulse-client-id': 'c1', 'impulse-client-seq': '1' };
    assert.equal((await call('POST', '/kv/batch', '{"ops":[{"op":"put","key":"single","value":"1"}]}', session)).status, 204);
    assert.equal((await call('PUT', '/kv/session', 'v', session)).status, 204);
    assert.equal((await call('GET', '/kv/single?r=all')).text, '1');
  });
});

describe('the leaderless peer protocol', () => {
  it('answers any malformed request with an error (never a throw, never a crash)', async () => {
    const net = await LeaderlessTestNetwork.open([1]);
    try {
      let handler: RpcHandler | undefined;
      serveReplica({ serve: (_channel, h) => (handler = h) }, net.node(1).replica, { keyBytesMax: 16, valueBytesMax: 64 }, net.node(1).antiEntropy, net.node(1).membershipService());
      const ask = (body: unknown): Promise<{ error: unknown; response: unknown }> =>
        new Promise((resolve) => {
          const reply: RpcDone = (error, response) => resolve({ error, response });
          handler!(2, body, reply);
        });
      const body = fc.oneof(
        fc.anything(),
        fc.tuple(fc.integer({ min: -1, max: 11 }), fc.anything(), fc.anything(), fc.anything()),
        fc.tuple(fc.constant(9), fc.constantFrom('pending', 'commit', 'abort', 'other'), fc.integer(), fc.array(fc.tuple(fc.anything(), fc.anything()), { maxLength: 3 })),
        fc.tuple(fc.constantFrom(0, 1, 2, 3, 5, 6, 7, 8), fc.uint8Array({ maxLength: 40 }), fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.string(), fc.integer())),
      );
      await fc.assert(
        fc.asyncProperty(body, async (request) => {
          const { error } = await ask(request);
          if (error !== null) assert.ok(isImpulseError(error), String(error));
        }),
        { numRuns: 300 },
      );
      const { error } = await ask([1, Buffer.from('k'), Buffer.from([0x05])]);
      assert.ok(isImpulseError(error, 'IMPULSE_ERR_LEADERLESS_MESSAGE_INVALID'));
    } finally {
      await net.close();
    }
  });
});

/**
 * The plain-GET path (fast-get.ts): which requests take it, that its answers
 * are the general path's (status, fields, body), and that on one connection
 * it never answers out of order or with a value older than a write before it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { openLocalKvService } from '../service/open-local.js';
import { ImpulseServer } from './server.js';
import { plainGetKey } from './fast-get.js';
import { RawConnection, type RawResponse, rawRequest } from '../../testkit/http/raw-connection.js';

function request(method: string, url: string, headers: Record<string, string> = {}): IncomingMessage {
  return { method, url, headers } as unknown as IncomingMessage;
}

describe('plainGetKey', () => {
  it('takes GET /kv/{key} with a plain key, as its latin1 bytes', () => {
    assert.equal(plainGetKey(request('GET', '/kv/a'), 16), 'a');
    assert.equal(plainGetKey(request('GET', '/kv/batch'), 16), 'batch');
    assert.equal(plainGetKey(request('GET', '/kv/a+b/c'), 16), 'a+b/c');
    assert.equal(plainGetKey(request('GET', '/kv/\u00e9'), 16), '\u00e9'); // the byte 0xe9
    assert.equal(plainGetKey(request('GET', `/kv/${'k'.repeat(16)}`), 16), 'k'.repeat(16));
  });

  it('leaves every other request to the general path', () => {
    for (const [method, url, headers] of [
      ['HEAD', '/kv/a', {}],
      ['PUT', '/kv/a', {}],
      ['GET', '/kv/', {}],
      ['GET', '/kv', {}],
      ['GET', '/kvx/a', {}],
      ['GET', '/health', {}],
      ['GET', '/kv/a%20b', {}],
      ['GET', '/kv/a?consistency=serializable', {}],
      ['GET', '/kv/a?', {}],
      ['GET', `/kv/${'k'.repeat(17)}`, {}],
      ['GET', '/kv/a', { 'content-length': '3' }],
      ['GET', '/kv/a', { 'transfer-encoding': 'chunked' }],
      ['GET', '/kv/a', { expect: '100-continue' }],
      ['GET', '/kv/a', { 'impulse-shard': '1:1' }],
    ] as const) {
      assert.equal(plainGetKey(request(method, url, headers), 16), undefined, `${method} ${url} ${JSON.stringify(headers)}`);
    }
  });
});

describe('plain GETs over a live server', () => {
  let server: ImpulseServer;
  let port: number;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'impulse-fast-get-'));
    const service = await openLocalKvService({ engine: 'memory', dataDir: dir, limits: DEFAULT_LIMITS, sync: 'none' });
    server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test' });
    ({ port } = await server.listen(0, '127.0.0.1'));
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The answer's fields without Date (its value moves), in name order: what a client can tell apart. */
  function visible(response: RawResponse): unknown {
    const { date, ...fields } = response.headers;
    assert.ok(date !== undefined);
    return { status: response.status, fields: Object.entries(fields).sort(), body: response.body.toString('latin1') };
  }

  it('answers as the general path does, present and absent', async () => {
    const connection = await RawConnection.open(port);
    try {
      // Two writes: the revision (the ETag) is then not 1, a value a constant could match.
      connection.write(Buffer.concat([rawRequest('PUT', '/kv/same', 'old'), rawRequest('PUT', '/kv/same', 'value')]));
      assert.deepEqual((await connection.responses(2)).map((response) => response.status), [204, 204]);
      // `?consistency=linearizable` asks for the same read through the general path.
      for (const key of ['same', 'absent']) {
        connection.write(Buffer.concat([rawRequest('GET', `/kv/${key}`), rawRequest('GET', `/kv/${key}?consistency=linearizable`)]));
        const [plain, general] = await connection.responses(2);
        assert.deepEqual(visible(plain!), visible(general!));
        assert.equal(plain!.status, key === 'same' ? 200 : 404);
      }
    } finally {
      connection.destroy();
    }
    // A client that closes after its request: both paths say so and close.
    const closing: unknown[] = [];
    for (const target of ['/kv/same', '/kv/same?consistency=linearizable']) {
      const once = await RawConnection.open(port);
      try {
        once.write(rawRequest('GET', target, undefined, { Connection: 'close' }));
        const [answer] = await once.responses(1);
        assert.equal(answer!.headers['connection'], 'close');
        await once.serverClosed();
        closing.push(visible(answer!));
      } finally {
        once.destroy();
      }
    }
    assert.deepEqual(closing[0], closing[1]);
  });

  it('answers requests pipelined on one connection in order, never with a value older than a write before it (fast-check)', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('put' as const), key: fc.constantFrom('a', 'b'), value: fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom('x', 'y', 'z') }) }),
      fc.record({ kind: fc.constant('delete' as const), key: fc.constantFrom('a', 'b') }),
      fc.record({ kind: fc.constant('get' as const), key: fc.constantFrom('a', 'b') }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
        const connection = await RawConnection.open(port);
        try {
          for (const key of ['a', 'b']) connection.write(rawRequest('DELETE', `/kv/${key}`));
          await connection.responses(2);
          const model = new Map<string, string>();
          const expected: [number, string | undefined][] = [];
          const bytes: Buffer[] = [];
          for (const next of ops) {
            if (next.kind === 'put') {
              model.set(next.key, next.value);
              bytes.push(rawRequest('PUT', `/kv/${next.key}`, next.value));
              expected.push([204, undefined]);
            } else if (next.kind === 'delete') {
              model.delete(next.key);
              bytes.push(rawRequest('DELETE', `/kv/${next.key}`));
              expected.push([204, undefined]);
            } else {
              const value = model.get(next.key);
              bytes.push(rawRequest('GET', `/kv/${next.key}`));
              expected.push(value === undefined ? [404, undefined] : [200, value]);
            }
          }
          connection.write(Buffer.concat(bytes)); // one TCP write: every request is pipelined behind the ones before it
          const responses = await connection.responses(ops.length);
          assert.deepEqual(
            responses.map((response, index) => [response.status, expected[index]![1] === undefined ? undefined : response.body.toString()]),
            expected,
          );
        } finally {
          connection.destroy();
        }
      }),
      { numRuns: 25 },
    );
  });
});

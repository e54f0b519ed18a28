import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ERROR_CATALOG, type ErrorCode } from '../errors.js';
import { httpStatusOf } from './http-status.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { type KvService, READ_NOT_SYNC } from '../service/kv-service.js';
import { openLocalKvService } from '../service/open-local.js';
import { ImpulseServer } from './server.js';
import { SeededRandom } from '../util/random.js';

interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  json: () => any;
}

for (const engineName of ['memory', 'leveldb']) {
  describe(`HTTP API over ${engineName}`, () => {
    let dir = '';
    let service: KvService;
    let server: ImpulseServer;
    let base = '';

    async function call(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
      const response = await fetch(base + path, { method, ...(body !== undefined ? { body } : {}), headers });
      const bytes = Buffer.from(await response.arrayBuffer());
      return { status: response.status, headers: response.headers, body: bytes, json: () => JSON.parse(bytes.toString('utf8')) };
    }

    function assertError(reply: Reply, status: number, code: string): void {
      assert.equal(reply.status, status, `expected ${status} ${code}, got ${reply.status} ${reply.body.toString()}`);
      assert.match(reply.headers.get('content-type') ?? '', /application\/json/);
      const { error } = reply.json();
      assert.equal(error.code, code);
      assert.equal(typeof error.message, 'string');
      assert.ok(error.message.length > 0);
    }

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `impulse-api-${engineName}-`));
      service = await openLocalKvService({ engine: engineName, dataDir: dir, sync: 'fsync', limits: { ...DEFAULT_LIMITS, keyBytesMax: 64, valueBytesMax: 1024, batchOpsMax: 10 } });
      server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test', pageLimitMax: 50 });
      const address = await server.listen(0, '127.0.0.1');
      base = `http://127.0.0.1:${address.port}`;
    });
    after(async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('puts, gets and deletes a key; missing keys are a JSON 404; delete is idempotent', async () => {
      assert.equal((await call('PUT', '/kv/greeting', 'hello', { 'content-type': 'text/plain' })).status, 204);
      const got = await call('GET', '/kv/greeting');
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('content-type'), 'application/octet-stream');
      assert.equal(got.body.toString(), 'hello');
      const head = await call('HEAD', '/kv/greeting');
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), '5', 'HEAD tells the length a GET would send');
      assert.equal((await call('DELETE', '/kv/greeting')).status, 204);
      assertError(await call('GET', '/kv/greeting'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
      assert.equal((await call('DELETE', '/kv/greeting')).status, 204);
    });

    it('round-trips binary keys (percent-encoded) and binary and empty values', async () => {
      const value = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10, 13]);
      assert.equal((await call('PUT', '/kv/%00%FF%2Fslash/and%20space', value)).status, 204);
      assert.deepEqual((await call('GET', '/kv/%00%ff%2fslash/and%20space')).body, value);
      assert.equal((await call('PUT', '/kv/empty', Buffer.alloc(0))).status, 204);
      const empty = await call('GET', '/kv/empty');
      assert.equal(empty.status, 200);
      assert.equal(empty.body.length, 0);
      // '+' in a path is a literal plus.
      await call('PUT', '/kv/a+b', 'plus');
      assert.equal((await call('GET', '/kv/a%2Bb')).body.toString(), 'plus');
    });

    it('rejects bad keys and values with coded errors and stores nothing', async () => {
      assertError(await call('PUT', '/kv/', 'v'), 400, 'IMPULSE_ERR_KEY_EMPTY');
      assertError(await call('GET', '/kv/'), 400, 'IMPULSE_ERR_KEY_EMPTY');
      assertError(await call('PUT', '/kv/bad%zzescape', 'v'), 400, 'IMPULSE_ERR_KEY_ENCODING');
      assertError(await call('PUT', '/kv/' + 'k'.repeat(65), 'v'), 413, 'IMPULSE_ERR_KEY_TOO_LARGE');
      assertError(await call('PUT', '/kv/toolarge', Buffer.alloc(1025)), 413, 'IMPULSE_ERR_VALUE_TOO_LARGE');
      assertError(await call('GET', '/kv/toolarge'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
      assert.equal((await call('PUT', '/kv/' + 'k'.repeat(64), Buffer.alloc(1024))).status, 204);
    });

    it('answers unknown routes with 404 and wrong methods with 405 and an Allow header', async () => {
      assertError(await call('GET', '/nope'), 404, 'IMPULSE_ERR_ROUTE_NOT_FOUND');
      assertError(await call('GET', '/'), 404, 'IMPULSE_ERR_ROUTE_NOT_FOUND');
      const patch = await call('PATCH', '/kv/x', 'v');
      assertError(patch, 405, 'IMPULSE_ERR_METHOD_NOT_ALLOWED');
      assert.equal(patch.headers.get('allow'), 'GET, HEAD, PUT, DELETE');
      assertError(await call('POST', '/kv/other', '{}'), 405, 'IMPULSE_ERR_METHOD_NOT_ALLOWED');
      assertError(await call('DELETE', '/kv'), 405, 'IMPULSE_ERR_METHOD_NOT_ALLOWED');
      assertError(await call('POST', '/health'), 405, 'IMPULSE_ERR_METHOD_NOT_ALLOWED');
      // GET /kv/batch is the key "batch", not the batch endpoint.
      assertError(await call('GET', '/kv/batch'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
    });

    it('pages through a range with cursors, forward and reverse, with prefix and bounds', async () => {
      const keys = Array.from({ length: 23 }, (_, i) => `range/${String(i).padStart(2, '0')}`);
      for (const key of keys) assert.equal((await call('PUT', `/kv/${encodeURIComponent(key)}`, `v${key}`)).status, 204);

      async function collect(query: string): Promise<string[]> {
        const seen: string[] = [];
        let cursor: string | null = null;
        for (let pages = 0; pages < 50; pages++) {
          const reply = await call('GET', `/kv?${query}${cursor ? `&cursor=${cursor}` : ''}`);
          assert.equal(reply.status, 200, reply.body.toString());
          const page = reply.json();
          for (const item of page.items) {
            assert.equal(item.value, `v${item.key}`);
            seen.push(item.key);
          }
          cursor = page.next;
          if (cursor === null) return seen;
        }
        throw new Error('too many pages');
      }
      assert.deepEqual(await collect('prefix=range%2F&limit=5'), keys);
      assert.deepEqual(await collect('prefix=range/&limit=4&reverse=true'), [...keys].reverse());
      assert.deepEqual(await collect('start=range/05&end=range/12&limit=3'), keys.slice(5, 12));
      assert.deepEqual(await collect('start=range/05&end=range/12&limit=3&reverse=true'), keys.slice(5, 12).reverse());
      assert.deepEqual(await collect('prefix=range/1&start=range/15'), keys.slice(15, 20));
      const first = (await call('GET', '/kv?prefix=range/&limit=2')).json();
      assert.equal(first.items.length, 2);
      assert.equal(typeof first.next, 'string');
      const defaultPage = (await call('GET', '/kv?prefix=range/')).json();
      assert.equal(defaultPage.items.length, 23);
      assert.equal(defaultPage.next, null);
    });

    it('returns binary data exactly in base64 mode and marks non-UTF-8 items in utf8 mode', async () => {
      const binaryKey = Buffer.from([0x62, 0x69, 0x6e, 0xff, 0x00]);
      const binaryValue = Buffer.from([0xc3, 0x28, 0x00, 0xff]);
      assert.equal((await call('PUT', '/kv/bin%FF%00', binaryValue)).status, 204);
      await call('PUT', '/kv/bio', 'plain ✓');
      const b64 = (await call('GET', '/kv?prefix=bi&encoding=base64')).json();
      assert.deepEqual(
        b64.items.map((i: { key: string; value: string }) => [Buffer.from(i.key, 'base64'), Buffer.from(i.value, 'base64')]),
        [
          [binaryKey, binaryValue],
          [Buffer.from('bio'), Buffer.from('plain ✓')],
        ],
      );
      const utf8 = (await call('GET', '/kv?prefix=bi')).json();
      const revisions = utf8.items.map((item: { revision: number }) => item.revision);
      assert.deepEqual(utf8.items[0], { key: binaryKey.toString('base64'), value: binaryValue.toString('base64'), encoding: 'base64', revision: revisions[0] });
      assert.deepEqual(utf8.items[1], { key: 'bio', value: 'plain ✓', revision: revisions[1] });
      assert.ok(revisions[0] < revisions[1], 'bin was written before bio');
    });

    it('rejects malformed range parameters with 400', async () => {
      for (const query of ['limit=0', 'limit=51', 'limit=abc', 'limit=-1', 'reverse=maybe', 'encoding=hex', 'cursor=***', 'color=red', 'limit=1&limit=2', 'start=%zz']) {
        assertError(await call('GET', `/kv?${query}`), 400, 'IMPULSE_ERR_RANGE_INVALID');
      }
    });

    it('applies a batch atomically; a malformed batch stores nothing', async () => {
      const ok = await call(
        'POST',
        '/kv/batch',
        JSON.stringify({ ops: [{ op: 'put', key: 'b1', value: 'one' }, { op: 'put', key: 'b2', value: 'two' }, { op: 'delete', key: 'b1' }] }),
      );
      assert.equal(ok.status, 204, ok.body.toString());
      assertError(await call('GET', '/kv/b1'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
      assert.equal((await call('GET', '/kv/b2')).body.toString(), 'two');
      const b64 = await call('POST', '/kv/batch', JSON.stringify({ encoding: 'base64', ops: [{ op: 'put', key: Buffer.from([0xff, 1]).toString('base64'), value: Buffer.from([0]).toString('base64') }] }));
      assert.equal(b64.status, 204);
      assert.deepEqual((await call('GET', '/kv/%FF%01')).body, Buffer.from([0]));

      const bad = [
        'not json',
        '[]',
        '{"ops": 5}',
        '{"ops": [{"op": "merge", "key": "x1"}]}',
        '{"ops": [{"op": "put", "key": "x1"}]}',
        '{"ops": [{"op": "put", "key": "x1", "value": "v", "extra": 1}]}',
        '{"ops": [{"op": "put", "key": "x1", "value": "v"}], "typo": true}',
        '{"encoding": "base64", "ops": [{"op": "put", "key": "!!notbase64", "value": "AA=="}]}',
        '{"encoding": "hex", "ops": []}',
        '{"ops": [{"op": "put", "key": "x1", "value": "v"}, {"op": "put", "key": "", "value": "v"}]}',
        '{"ops": [{"op": "put", "key": "x1", "value": "v"}, {"op": "delete", "key": 7}]}',
      ];
      for (const body of bad) {
        const reply = await call('POST', '/kv/batch', body);
        assert.equal(reply.status, 400, `${body} → ${reply.status} ${reply.body.toString()}`);
        assert.match(reply.json().error.code, /^IMPULSE_ERR_(BATCH_INVALID|KEY_EMPTY)$/);
      }
      // JSON.parse would keep the last "ops" (a silent no-op) and turn \ud800 into U+FFFD (a silent replacement).
      const strict = [
        '{"ops": [{"op": "put", "key": "x1", "value": "v"}], "ops": []}',
        '{"ops": [{"op": "put", "key": "x1", "value": "v", "value": "w"}]}',
        '{"ops": [{"op": "put", "key": "x1", "value": "\\ud800"}]}',
        '{"ops": [{"op": "put", "key": "x1\\udfff", "value": "v"}]}',
      ];
      for (const body of strict) assertError(await call('POST', '/kv/batch', body), 400, 'IMPULSE_ERR_BATCH_INVALID');
      const notUtf8 = Buffer.concat([Buffer.from('{"ops": [{"op": "put", "key": "x1", "value": "'), Buffer.from([0xff]), Buffer.from('"}]}')]);
      assertError(await call('POST', '/kv/batch', notUtf8), 400, 'IMPULSE_ERR_BATCH_INVALID');
      const tooMany = { ops: Array.from({ length: 11 }, (_, i) => ({ op: 'put', key: `x${i}`, value: 'v' })) };
      assertError(await call('POST', '/kv/batch', JSON.stringify(tooMany)), 413, 'IMPULSE_ERR_BATCH_TOO_LARGE');
      const tooBig = { ops: [{ op: 'put', key: 'x1', value: 'v'.repeat(1025) }] };
      assertError(await call('POST', '/kv/batch', JSON.stringify(tooBig)), 413, 'IMPULSE_ERR_VALUE_TOO_LARGE');
      assertError(await call('GET', '/kv/x1'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
      assertError(await call('GET', '/kv/x0'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
    });

    it('sends the revision as ETag on reads and writes, and on range items', async () => {
      const put = await call('PUT', '/kv/etag/a', 'one');
      assert.equal(put.status, 204);
      const revision = Number(/^"(\d+)"$/.exec(put.headers.get('etag') ?? '')?.[1]);
      assert.ok(revision > 0, `ETag ${put.headers.get('etag')}`);
      assert.equal((await call('GET', '/kv/etag/a')).headers.get('etag'), `"${revision}"`);
      assert.equal((await call('HEAD', '/kv/etag/a')).headers.get('etag'), `"${revision}"`);
      const batch = await call('POST', '/kv/batch', JSON.stringify({ ops: [{ op: 'put', key: 'etag/b', value: 'two' }, { op: 'put', key: 'etag/c', value: 'three' }] }));
      const batchRevision = Number(/^"(\d+)"$/.exec(batch.headers.get('etag') ?? '')?.[1]);
      assert.ok(batchRevision > revision);
      const items = (await call('GET', '/kv?prefix=etag/')).json().items;
      assert.deepEqual(items.map((item: { revision: number }) => item.revision), [revision, batchRevision, batchRevision]);
      const deleted = await call('DELETE', '/kv/etag/a');
      assert.equal(deleted.status, 204);
      assert.ok(Number(/^"(\d+)"$/.exec(deleted.headers.get('etag') ?? '')?.[1]) > batchRevision);
      assertError(await call('GET', '/kv/etag/a'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
    });

    it('honours If-Match and If-None-Match; a 412 names the key and its revision and changes nothing', async () => {
      const created = await call('PUT', '/kv/cas', 'v1', { 'if-none-match': '*' });
      assert.equal(created.status, 204);
      const etag = created.headers.get('etag')!;
      const exists = await call('PUT', '/kv/cas', 'again', { 'if-none-match': '*' });
      assertError(exists, 412, 'IMPULSE_ERR_PRECONDITION_FAILED');
      assert.deepEqual(exists.json().error.revision, Number(etag.slice(1, -1)));
      assert.equal(exists.json().error.key, 'cas');
      const stale = await call('PUT', '/kv/cas', 'v2', { 'if-match': `"${Number(etag.slice(1, -1)) + 100}"` });
      assertError(stale, 412, 'IMPULSE_ERR_PRECONDITION_FAILED');
      assertError(await call('DELETE', '/kv/cas', undefined, { 'if-match': '"999999"' }), 412, 'IMPULSE_ERR_PRECONDITION_FAILED');
      const got = await call('GET', '/kv/cas');
      assert.equal(got.body.toString(), 'v1');
      assert.equal(got.headers.get('etag'), etag);
      const swapped = await call('PUT', '/kv/cas', 'v2', { 'if-match': etag });
      assert.equal(swapped.status, 204);
      assert.equal((await call('GET', '/kv/cas')).body.toString(), 'v2');
      assert.equal((await call('DELETE', '/kv/cas', undefined, { 'if-match': swapped.headers.get('etag')! })).status, 204);
      const absent = await call('PUT', '/kv/cas', 'x', { 'if-match': swapped.headers.get('etag')! });
      assertError(absent, 412, 'IMPULSE_ERR_PRECONDITION_FAILED');
      assert.equal(absent.json().error.revision, null);
      assertError(await call('GET', '/kv/cas'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
    });

    it('refuses malformed conditions with 400 and stores nothing', async () => {
      const malformed: Array<Record<string, string>> = [{ 'if-match': '7' }, { 'if-match': 'W/"7"' }, { 'if-match': '"1", "2"' }, { 'if-match': '*' }, { 'if-none-match': '"3"' }, { 'if-match': '"1"', 'if-none-match': '*' }];
      for (const headers of malformed) {
        assertError(await call('PUT', '/kv/badcond', 'v', headers), 400, 'IMPULSE_ERR_CONDITION_INVALID');
      }
      assertError(await call('DELETE', '/kv/badcond', undefined, { 'if-none-match': '*' }), 400, 'IMPULSE_ERR_CONDITION_INVALID');
      assertError(await call('GET', '/kv/badcond'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
    });

    it('applies batch conditions all-or-nothing and names the failing op', async () => {
      const first = await call('POST', '/kv/batch', JSON.stringify({ ops: [{ op: 'put', key: 'bc/a', value: '1', ifAbsent: true }] }));
      assert.equal(first.status, 204);
      const revision = Number(first.headers.get('etag')!.slice(1, -1));
      const failed = await call(
        'POST',
        '/kv/batch',
        JSON.stringify({ ops: [{ op: 'put', key: 'bc/b', value: '2' }, { op: 'put', key: 'bc/a', value: '2', ifRevision: revision }, { op: 'delete', key: 'bc/a', ifRevision: revision + 50 }] }),
      );
      assertError(failed, 412, 'IMPULSE_ERR_PRECONDITION_FAILED');
      assert.equal(failed.json().error.op, 2);
      assertError(await call('GET', '/kv/bc/b'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
      assert.equal((await call('GET', '/kv/bc/a')).body.toString(), '1');
      const ok = await call('POST', '/kv/batch', JSON.stringify({ ops: [{ op: 'put', key: 'bc/b', value: '2', ifAbsent: true }, { op: 'delete', key: 'bc/a', ifRevision: revision }] }));
      assert.equal(ok.status, 204);
      assertError(await call('GET', '/kv/bc/a'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
      for (const op of [{ ifRevision: 0 }, { ifRevision: '3' }, { ifRevision: 1.5 }, { ifAbsent: false }, { ifRevision: 1, ifAbsent: true }]) {
        assertError(await call('POST', '/kv/batch', JSON.stringify({ ops: [{ op: 'put', key: 'bc/c', value: 'x', ...op }] })), 400, 'IMPULSE_ERR_CONDITION_INVALID');
      }
      assertError(await call('GET', '/kv/bc/c'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
    });

    it('applies a write sent twice with the same session once, and answers both alike', async () => {
      const session = { 'impulse-client-id': `api-${engineName}`, 'impulse-client-seq': '1' };
      const first = await call('PUT', '/kv/dedup', 'first', session);
      assert.equal(first.status, 204);
      await call('PUT', '/kv/other', 'x');
      const retry = await call('PUT', '/kv/dedup', 'second', session);
      assert.equal(retry.status, 204);
      assert.equal(retry.headers.get('etag'), first.headers.get('etag'));
      const got = await call('GET', '/kv/dedup');
      assert.equal(got.body.toString(), 'first');
      assert.equal(got.headers.get('etag'), first.headers.get('etag'));
      // A retried conditional write that failed fails the same way, even though it would hold now.
      const failing = { 'impulse-client-id': `api-${engineName}`, 'impulse-client-seq': '2', 'if-none-match': '*' };
      assertError(await call('PUT', '/kv/dedup', 'third', failing), 412, 'IMPULSE_ERR_PRECONDITION_FAILED');
      await call('DELETE', '/kv/dedup');
      assertError(await call('PUT', '/kv/dedup', 'third', failing), 412, 'IMPULSE_ERR_PRECONDITION_FAILED');
      assertError(await call('GET', '/kv/dedup'), 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
      const badSessions: Array<Record<string, string>> = [{ 'impulse-client-id': 'x' }, { 'impulse-client-seq': '3' }, { 'impulse-client-id': 'bad id', 'impulse-client-seq': '3' }, { 'impulse-client-id': 'x', 'impulse-client-seq': 'three' }];
      for (const headers of badSessions) {
        assertError(await call('PUT', '/kv/dedup', 'v', headers), 400, 'IMPULSE_ERR_SESSION_INVALID');
      }
    });

    it('takes consistency on reads and refuses unknown parameters on key requests', async () => {
      await call('PUT', '/kv/cons', 'v');
      for (const consistency of ['linearizable', 'serializable']) {
        assert.equal((await call('GET', `/kv/cons?consistency=${consistency}`)).body.toString(), 'v');
        assert.equal((await call('GET', `/kv?prefix=cons&consistency=${consistency}`)).json().items.length, 1);
      }
      assertError(await call('GET', '/kv/cons?consistency=eventual'), 400, 'IMPULSE_ERR_QUERY_INVALID');
      assertError(await call('GET', '/kv/cons?limit=1'), 400, 'IMPULSE_ERR_QUERY_INVALID');
      assertError(await call('PUT', '/kv/cons?consistency=serializable', 'w'), 400, 'IMPULSE_ERR_QUERY_INVALID');
      assertError(await call('GET', '/kv?consistency=eventual'), 400, 'IMPULSE_ERR_RANGE_INVALID');
      assert.equal((await call('GET', '/kv/cons')).body.toString(), 'v');
    });

    it('reports health, status and Prometheus metrics', async () => {
      const health = await call('GET', '/health');
      assert.equal(health.status, 200);
      assert.deepEqual(health.json(), { status: 'ok' });
      const status = (await call('GET', '/status')).json();
      assert.equal(status.engine, engineName);
      assert.equal(status.version, 'test');
      assert.equal(status.durable, engineName !== 'memory');
      assert.equal(status.sync, engineName === 'memory' ? 'none' : 'fsync');
      assert.equal(typeof status.durability, 'string');
      assert.equal(typeof status.uptimeSeconds, 'number');
      assert.equal(status.mode, 'local');
      assert.ok(status.appliedIndex > 0);
      assert.equal(status.durableAppliedIndex, status.appliedIndex);
      assert.deepEqual(status.health, { status: 'ok' });
      if (engineName === 'memory') assert.ok(status.keyCount > 0);
      else assert.ok(status.diskBytes > 0);
      // The range limit /status names is the one a request meets: that many is served, one more refused.
      assert.equal((await call('GET', `/kv?limit=${status.limits.rangeLimitMax}`)).status, 200);
      assertError(await call('GET', `/kv?limit=${status.limits.rangeLimitMax + 1}`), 400, 'IMPULSE_ERR_RANGE_INVALID');
      const metrics = await call('GET', '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.headers.get('content-type') ?? '', /text\/plain/);
      const text = metrics.body.toString();
      assert.match(text, /impulse_http_requests_total\{route="\/kv\/\{key\}",method="PUT",status="204"\} \d+/);
      assert.match(text, /impulse_http_request_duration_seconds_bucket\{le="0.005",route="\/kv\/\{key\}",method="GET",status="200"\} \d+/);
      assert.match(text, /impulse_http_requests_total\{route="\/kv\/\{key\}",method="GET",status="404"\} \d+/);
      assert.match(text, new RegExp(`impulse_engine_figure\\{engine="${engineName}",figure="group_commit_calls"\\} \\d+`));
    });

    it('survives random garbage requests and malformed HTTP, and keeps serving', async () => {
      const random = new SeededRandom(42);
      const methods = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
      const pieces = ['/kv', '/kv/', '/kv/batch', '/status', '/health', '/metrics', '%', '%z', '?', '&', '=', 'limit=', 'cursor=', 'prefix=%ff', '/', 'x', '..', '%00'];
      for (let i = 0; i < 300; i++) {
        let path = '/';
        const parts = random.between(1, 5);
        for (let p = 0; p < parts; p++) path += pieces[random.int(pieces.length)];
        const method = methods[random.int(methods.length)]!;
        const body = method === 'GET' || method === 'HEAD' ? undefined : Buffer.from(Array.from({ length: random.int(64) }, () => random.int(256)));
        const reply = await call(method, path.replace(/^\/\//, '/'), body);
        assert.ok(reply.status >= 200 && reply.status < 500, `${method} ${path} → ${reply.status} ${reply.body.toString()}`);
      }
      const raw = await new Promise<string>((resolve) => {
        const socket = connect(Number(new URL(base).port), '127.0.0.1');
        let answer = '';
        socket.on('data', (chunk) => (answer += chunk.toString()));
        socket.on('close', () => resolve(answer));
        socket.on('error', () => resolve(answer));
        socket.write('THIS IS NOT HTTP\r\n\r\n');
      });
      assert.match(raw, /^HTTP\/1\.1 400/);
      assert.equal((await call('GET', '/health')).status, 200);
    });
  });
}

describe('error catalog', () => {
  it('documents every error code in docs/api.md', async () => {
    const doc = await readFile(new URL('../../../docs/api.md', import.meta.url), 'utf8');
    for (const code of Object.keys(ERROR_CATALOG) as ErrorCode[]) {
      const status = httpStatusOf(code);
      assert.ok(doc.includes(code), `docs/api.md does not mention ${code}`);
      assert.ok(new RegExp(`${code}\\W+\\|\\s*${status}`).test(doc), `docs/api.md does not give status ${status} for ${code}`);
    }
  });
});

describe('graceful shutdown', () => {
  it('finishes in-flight requests, refuses new connections, then closes the store', async () => {
    const service = await openLocalKvService({ engine: 'memory', dataDir: '', sync: 'fsync', limits: DEFAULT_LIMITS });
    const server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test' });
    const { port } = await server.listen(0, '127.0.0.1');
    // Start a PUT whose body arrives slowly, then shut down while it is in flight.
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString()));
    const socketClosed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('PUT /kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = server.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
    socket.write('cd');
    await closing;
    await socketClosed;
    assert.match(answer, /^HTTP\/1\.1 204/);
    assert.match(answer, /connection: close/i);
    assert.equal(service.health().status, 'unavailable');
  });
});

describe('GET /kv/{key} on a service that reads synchronously', () => {
  it('answers present and absent keys through getSync, and through get only when the engine cannot read synchronously', async () => {
    // Every engine now answers cached reads synchronously: the second service says READ_NOT_SYNC
    // itself, as an engine does when a read must wait for the disk.
    for (const [engine, synchronous] of [['memory', true], ['lsm', true], ['lsm', false]] as const) {
      const dir = await mkdtemp(join(tmpdir(), `impulse-api-sync-${engine}-`));
      const service = await openLocalKvService({ engine, dataDir: dir, sync: 'none', limits: DEFAULT_LIMITS });
      // The same service, counting the asynchronous reads the server asks of it.
      let asyncReads = 0;
      const counted = Object.create(service) as KvService;
      counted.get = (key, options) => {
        asyncReads++;
        return service.get(key, options);
      };
      if (!synchronous) {
        counted.getSync = () => READ_NOT_SYNC;
        counted.getSyncLatin1 = () => READ_NOT_SYNC; // the plain GET's read (fast-get.ts)
      }
      const server = new ImpulseServer({ service: counted, logger: pino({ level: 'silent' }), version: 'test' });
      try {
        const base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
        assert.equal((await fetch(`${base}/kv/k`, { method: 'PUT', body: 'v' })).status, 204);
        const present = await fetch(`${base}/kv/k`);
        assert.equal(present.status, 200);
        assert.equal(await present.text(), 'v');
        assert.equal(present.headers.get('etag'), '"1"');
        const absent = await fetch(`${base}/kv/absent?consistency=serializable`);
        assert.equal(absent.status, 404);
        assert.equal(((await absent.json()) as { error: { code: string } }).error.code, 'IMPULSE_ERR_KEY_NOT_FOUND');
        assert.equal((await fetch(`${base}/kv/k?consistency=eventual`)).status, 400);
        assert.equal(asyncReads, synchronous ? 0 : 2, `${engine}: asynchronous reads`);
      } finally {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      }
    }
  });
});

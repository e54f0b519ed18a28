/**
 * The HTTP front end under abuse (issue #10): pipelined requests in order,
 * backpressure on clients that never read, closed connections, timeouts that
 * release descriptors, requests without a length, and every connection-level
 * answer in the JSON error format. Raw sockets, because a client library hides
 * exactly what these tests are about.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type IncomingMessage, type Server, createServer, request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { DEFAULT_LIMITS, type EngineLimits } from '../storage/engine.js';
import type { KvService } from '../service/kv-service.js';
import { openLocalKvService } from '../service/open-local.js';
import { ImpulseServer, type ServerOptions } from './server.js';
import { RequestPipeline } from './pipeline.js';
import { RawConnection, type RawResponse, rawRequest } from '../../testkit/http/raw-connection.js';

interface Running {
  readonly service: KvService;
  readonly server: ImpulseServer;
  readonly port: number;
  stop(): Promise<void>;
}

async function startServer(engineName: string, limits: Partial<EngineLimits>, options: Partial<ServerOptions> = {}): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), `impulse-pipeline-${engineName}-`));
  const service = await openLocalKvService({ engine: engineName, dataDir: dir, limits: { ...DEFAULT_LIMITS, ...limits }, sync: 'none' });
  const server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test', shutdownGraceMs: 2_000, ...options });
  const { port } = await server.listen(0, '127.0.0.1');
  return {
    service,
    server,
    port,
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

function assertJsonError(response: RawResponse, status: number, code: string): void {
  assert.equal(response.status, status, `expected ${status} ${code}, got ${response.status} ${response.body.toString()}`);
  assert.match(response.headers['content-type'] ?? '', /application\/json/);
  assert.equal(JSON.parse(response.body.toString('utf8')).error.code, code);
}

/** How many answers the server has given on `route` with `status`, from its metrics. */
async function answered(server: ImpulseServer, route: string, method: string, status: number): Promise<number> {
  const text = await server.metrics.render();
  const match = new RegExp(`impulse_http_requests_total\\{route="${route.replace(/[{}/]/g, '\\$&')}",method="${method}",status="${status}"\\} (\\d+)`).exec(text);
  return match ? Number(match[1]) : 0;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// Every engine answers these GETs synchronously (Engine.getSync) while the key is in memory; the last
// variant takes that away, so the server's asynchronous GET path must keep the order too.
for (const variant of ['memory', 'leveldb', 'lsm', 'lsm without getSync']) {
  const engineName = variant.split(' ')[0]!;
  describe(`pipelined requests over ${variant}`, () => {
    let running: Running;
    before(async () => {
      running = await startServer(engineName, { valueBytesMax: 1024 });
      if (variant.endsWith('without getSync')) Object.assign(running.service, { getSync: undefined, getSyncLatin1: undefined });
    });
    after(() => running.stop());

    it('answers requests written in one TCP write as if processed in order', async () => {
      const connection = await RawConnection.open(running.port);
      connection.write(rawRequest('PUT', '/kv/order', 'old'));
      assert.equal((await connection.responses(1))[0]!.status, 204);
      connection.write(
        Buffer.concat([
          rawRequest('PUT', '/kv/order', 'new'),
          rawRequest('GET', '/kv/order'),
          rawRequest('DELETE', '/kv/order'),
          rawRequest('GET', '/kv/order'),
          rawRequest('POST', '/kv/batch', JSON.stringify({ ops: [{ op: 'put', key: 'order', value: 'batched' }] })),
          rawRequest('GET', '/kv/order'),
        ]),
      );
      const responses = await connection.responses(6);
      assert.deepEqual(
        responses.map((r) => [r.status, r.body.toString()]),
        [
          [204, ''],
          [200, 'new'],
          [204, ''],
          [404, responses[3]!.body.toString()],
          [204, ''],
          [200, 'batched'],
        ],
      );
      assertJsonError(responses[3]!, 404, 'IMPULSE_ERR_KEY_NOT_FOUND');
      connection.destroy();
    });

    it('matches a sequential model for random pipelined sequences split at random points (fast-check)', async () => {
      const keys = ['a', 'b', 'c'];
      const operation = fc.oneof(
        fc.record({ op: fc.constant('put' as const), key: fc.constantFrom(...keys), value: fc.string({ maxLength: 8 }) }),
        fc.record({ op: fc.constant('get' as const), key: fc.constantFrom(...keys) }),
        fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...keys) }),
      );
      let round = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 25 }), fc.array(fc.nat(), { maxLength: 6 }), async (operations, cuts) => {
          const prefix = `model${round++}-`;
          const model = new Map<string, string>();
          const expected: Array<[number, string]> = [];
          const wire: Buffer[] = [];
          for (const operation of operations) {
            const path = `/kv/${prefix}${operation.key}`;
            if (operation.op === 'put') {
              wire.push(rawRequest('PUT', path, operation.value));
              model.set(operation.key, operation.value);
              expected.push([204, '']);
            } else if (operation.op === 'delete') {
              wire.push(rawRequest('DELETE', path));
              model.delete(operation.key);
              expected.push([204, '']);
            } else {
              wire.push(rawRequest('GET', path));
              const value = model.get(operation.key);
              expected.push(value === undefined ? [404, 'IMPULSE_ERR_KEY_NOT_FOUND'] : [200, value]);
            }
          }
          const bytes = Buffer.concat(wire);
          const connection = await RawConnection.open(running.port);
          let from = 0;
          for (const cut of [...cuts.map((c) => c % (bytes.length + 1))].sort((x, y) => x - y)) {
            connection.write(bytes.subarray(from, Math.max(from, cut)));
            from = Math.max(from, cut);
            await sleep(1);
          }
          connection.write(bytes.subarray(from));
          const responses = await connection.responses(expected.length);
          connection.destroy();
          const actual = responses.map((r): [number, string] => [r.status, r.status === 404 ? JSON.parse(r.body.toString()).error.code : r.body.toString()]);
          assert.deepEqual(actual, expected);
        }),
        { numRuns: 40, seed: 10 },
      );
    });

    it('answers a PUT without Content-Length 411 in the JSON format, closes, and stores nothing', async () => {
      assert.equal((await fetch(`http://127.0.0.1:${running.port}/kv/nolength`, { method: 'PUT', body: 'old' })).status, 204);
      const connection = await RawConnection.open(running.port);
      connection.write('PUT /kv/nolength HTTP/1.1\r\nHost: test\r\n\r\nnew value without a length');
      const [response] = await connection.responses(1);
      assertJsonError(response!, 411, 'IMPULSE_ERR_LENGTH_REQUIRED');
      assert.equal(response!.headers['connection'], 'close');
      await connection.serverClosed();
      assert.equal(connection.pending.length, 0, `nothing after the 411: ${connection.pending.toString('latin1')}`);
      assert.deepEqual(await get(running.port, '/kv/nolength'), { status: 200, body: 'old' });
      // A chunked body needs no Content-Length.
      const chunked = await RawConnection.open(running.port);
      chunked.write('PUT /kv/nolength HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnew\r\n0\r\n\r\n');
      assert.equal((await chunked.responses(1))[0]!.status, 204);
      chunked.destroy();
      assert.deepEqual(await get(running.port, '/kv/nolength'), { status: 200, body: 'new' });
    });
  });
}

describe('a client that pipelines and never reads', () => {
  let running: Running;
  const valueBytes = 256 * 1024;
  before(async () => {
    running = await startServer('memory', { valueBytesMax: 1024 * 1024 });
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`http://127.0.0.1:${running.port}/kv/big/${i}`, { method: 'PUT', body: Buffer.alloc(valueBytes, 0x61) });
      assert.equal(response.status, 204);
    }
  });
  after(() => running.stop());

  it('gets no more answers produced than the socket can hold, and the server keeps serving others', async () => {
    const pageBytes = 4 * valueBytes; // one range page: four 256 KiB values, ~1 MiB of JSON
    const requests = 200; // 200 MiB of answers if they were all produced
    const connection = await RawConnection.open(running.port);
    connection.socket.pause(); // never read
    connection.write(Buffer.concat(Array.from({ length: requests }, () => rawRequest('GET', '/kv?prefix=big/&limit=4'))));
    await sleep(1_500);
    const started = performance.now();
    assert.equal((await get(running.port, '/health')).status, 200);
    assert.ok(performance.now() - started < 1_000, `health took ${performance.now() - started} ms`);
    const produced = await answered(running.server, '/kv', 'GET', 200);
    // The kernel's socket buffers hold a few MiB; everything else waits unproduced.
    assert.ok(produced < 32, `${produced} range pages of ${pageBytes} bytes were produced for a client that reads nothing`);
    // When the client goes away, the requests still waiting are dropped, never run.
    connection.destroy();
    await sleep(300);
    const afterClose = await answered(running.server, '/kv', 'GET', 200);
    await sleep(500);
    assert.equal(await answered(running.server, '/kv', 'GET', 200), afterClose);
    assert.ok(afterClose < 32, `${afterClose} pages produced in all`);
  });

  it('never applies writes that were still waiting when the client closed', async () => {
    const connection = await RawConnection.open(running.port);
    connection.socket.pause();
    const blockers = Array.from({ length: 48 }, () => rawRequest('GET', '/kv?prefix=big/&limit=4'));
    const writes = Array.from({ length: 10 }, (_, i) => rawRequest('PUT', `/kv/abandoned/${i}`, 'v'));
    connection.write(Buffer.concat([...blockers, ...writes]));
    await sleep(1_000);
    connection.destroy();
    await sleep(500);
    for (let i = 0; i < 10; i++) assert.equal((await get(running.port, `/kv/abandoned/${i}`)).status, 404, `write ${i} was applied`);
  });
});

describe('timeouts, limits and Expect, answered in the JSON format', () => {
  let running: Running;
  const urlBytesMax = 2048;
  before(async () => {
    running = await startServer('memory', { valueBytesMax: 1024 }, { headersTimeoutMs: 400, requestTimeoutMs: 800, lingerMs: 300, urlBytesMax, headerFieldsBytesMax: 4096 });
  });
  after(() => running.stop());

  it('answers a request whose headers never complete 408 and releases its descriptor', async () => {
    const sockets = (): number => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:');
      } catch {
        return false;
      }
    }).length;
    if (process.platform !== 'linux') return;
    const baseline = sockets();
    const clients = await Promise.all(Array.from({ length: 10 }, () => RawConnection.open(running.port, { allowHalfOpen: true })));
    for (const client of clients) client.write('GET /kv/slow HTTP/1.1\r\nHost: test\r\n'); // never the blank line
    for (const client of clients) {
      const [response] = await client.responses(1, 5_000);
      assertJsonError(response!, 408, 'IMPULSE_ERR_REQUEST_TIMEOUT');
      await client.serverClosed(5_000);
    }
    // Our clients keep their side open (allowHalfOpen) and never close: the server must not wait for them.
    const deadline = performance.now() + 5_000;
    while (sockets() > baseline + clients.length && performance.now() < deadline) await sleep(50);
    assert.equal(sockets(), baseline + clients.length, 'the server still holds descriptors of timed-out connections');
    for (const client of clients) client.destroy();
  });

  it('answers a body that stops arriving 408, stores nothing and closes', async () => {
    const connection = await RawConnection.open(running.port);
    connection.write('PUT /kv/slowbody HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nhalf');
    const [response] = await connection.responses(1, 5_000);
    assertJsonError(response!, 408, 'IMPULSE_ERR_REQUEST_TIMEOUT');
    await connection.serverClosed(5_000);
    assert.equal((await get(running.port, '/kv/slowbody')).status, 404);
  });

  it('answers header fields over the limit 431 and a request target over the limit 414', async () => {
    const headers = await RawConnection.open(running.port);
    headers.write(`GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    assertJsonError((await headers.responses(1))[0]!, 431, 'IMPULSE_ERR_HEADERS_TOO_LARGE');
    await headers.serverClosed();
    // Over the target limit but within what the parser takes: refused by the pipeline; the connection stays usable.
    const target = await RawConnection.open(running.port);
    target.write(Buffer.concat([rawRequest('GET', `/kv/${'k'.repeat(urlBytesMax)}`), rawRequest('GET', '/health')]));
    const [tooLong, health] = await target.responses(2);
    assertJsonError(tooLong!, 414, 'IMPULSE_ERR_URI_TOO_LONG');
    assert.equal(health!.status, 200);
    target.destroy();
    // Far over: the parser's own limit strikes inside the request line.
    const huge = await RawConnection.open(running.port);
    huge.write(rawRequest('GET', `/kv/${'k'.repeat(40 * 1024)}`));
    assertJsonError((await huge.responses(1))[0]!, 414, 'IMPULSE_ERR_URI_TOO_LONG');
    await huge.serverClosed();
  });

  it('answers malformed HTTP 400 IMPULSE_ERR_HTTP_MALFORMED, after the answers owed before it', async () => {
    const connection = await RawConnection.open(running.port);
    connection.write(Buffer.concat([rawRequest('PUT', '/kv/before-garbage', 'v'), Buffer.from('THIS IS NOT HTTP\r\n\r\n')]));
    const [put, garbage] = await connection.responses(2);
    assert.equal(put!.status, 204);
    assertJsonError(garbage!, 400, 'IMPULSE_ERR_HTTP_MALFORMED');
    await connection.serverClosed();
  });

  it('answers an unsupported Expect 417 and stores nothing', async () => {
    const connection = await RawConnection.open(running.port);
    connection.write(Buffer.concat([rawRequest('PUT', '/kv/expect', 'v', { Expect: 'teapot' }), rawRequest('GET', '/health')]));
    const [refused, health] = await connection.responses(2);
    assertJsonError(refused!, 417, 'IMPULSE_ERR_EXPECTATION_FAILED');
    assert.equal(health!.status, 200);
    connection.destroy();
    assert.equal((await get(running.port, '/kv/expect')).status, 404);
  });

  it('refuses a value over the limit before 100 Continue, and sends 100 Continue for one within it', async () => {
    const refused = await RawConnection.open(running.port);
    refused.write('PUT /kv/continue HTTP/1.1\r\nHost: test\r\nContent-Length: 2048\r\nExpect: 100-continue\r\n\r\n');
    const [first] = await refused.responses(1);
    assertJsonError(first!, 413, 'IMPULSE_ERR_VALUE_TOO_LARGE');
    assert.equal(first!.headers['connection'], 'close');
    await refused.serverClosed();
    const accepted = await RawConnection.open(running.port);
    accepted.write('PUT /kv/continue HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    assert.equal((await accepted.responses(1))[0]!.status, 100);
    accepted.write('hello');
    assert.equal((await accepted.responses(1))[0]!.status, 204);
    accepted.destroy();
    assert.deepEqual(await get(running.port, '/kv/continue'), { status: 200, body: 'hello' });
  });
});

describe('closing a connection', () => {
  let running: Running;
  before(async () => {
    running = await startServer('memory', { valueBytesMax: 1024 }, { lingerMs: 2_000 });
  });
  after(() => running.stop());

  it('lingers: a client that sends its body after a refusal it has not read yet still reads the refusal', async () => {
    // curl's way: ask for 100 Continue, and send the body anyway when no answer comes soon enough. The
    // server refuses (413) and closes; if it closed outright, the body would arrive at a closed socket,
    // the kernel would answer with a reset, and the reset would destroy the unread 413 at the client.
    const connection = await RawConnection.open(running.port);
    connection.socket.pause();
    connection.write('PUT /kv/linger HTTP/1.1\r\nHost: test\r\nContent-Length: 4194304\r\nExpect: 100-continue\r\n\r\n');
    await sleep(200);
    connection.write(Buffer.alloc(4 * 1024 * 1024, 0x63));
    await sleep(300);
    connection.socket.resume();
    const [response] = await connection.responses(1);
    assertJsonError(response!, 413, 'IMPULSE_ERR_VALUE_TOO_LARGE');
    await connection.serverClosed();
  });

});

describe('a value over the limit, sent whole by the client', () => {
  let running: Running;
  before(async () => {
    running = await startServer('memory', { valueBytesMax: 1024 });
  });
  after(() => running.stop());

  for (const bodyMiB of [4, 96]) {
    it(`reaches a node:http client as a 413, not a broken pipe (${bodyMiB} MiB body)`, async () => {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: running.port, method: 'PUT', path: '/kv/huge', headers: { 'content-length': bodyMiB * 1024 * 1024 } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(Buffer.alloc(bodyMiB * 1024 * 1024, 0x62));
      });
      assert.equal(status, 413);
    });
  }

  it('reaches a Python http.client client as a 413', async (t) => {
    const script = [
      'import http.client, sys',
      `c = http.client.HTTPConnection("127.0.0.1", ${running?.port ?? 0}, timeout=20)`,
      'c.request("PUT", "/kv/huge", body=b"x" * (8 * 1024 * 1024))',
      'r = c.getresponse()',
      'print(r.status, r.read().decode())',
    ].join('\n');
    // Asynchronously: the server under test runs in this process.
    let output: { stdout: string; stderr: string };
    try {
      output = await promisify(execFile)('python3', ['-c', script], { encoding: 'utf8', timeout: 30_000 });
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') {
        t.skip('python3 is not installed');
        return;
      }
      throw error;
    }
    assert.match(output.stdout, /^413 .*IMPULSE_ERR_VALUE_TOO_LARGE/, `python: ${output.stdout} ${output.stderr}`);
  });
});

describe('requests of a turn are handled together in its check phase (pipeline point 6)', () => {
  let server: Server;
  let port: number;
  /** What happened to each request, in order: node:http's request event, the handler's start, the end of that turn. */
  const events = new Map<string, string[]>();
  const note = (url: string | undefined, what: string): void => {
    const key = url ?? '?';
    events.set(key, [...(events.get(key) ?? []), what]);
  };

  before(async () => {
    server = createServer();
    new RequestPipeline(
      { pipelineDepthMax: 4, urlBytesMax: 1024, lingerMs: 100, headersTimeoutMs: 5_000, requestTimeoutMs: 5_000 },
      {
        handle: (req, res) => {
          note(req.url, 'started');
          res.end(`answer to ${req.url}`);
        },
        reject: (_req, res) => res.end(),
        answeredRaw: () => {},
      },
    ).attach(server);
    // Runs right after the pipeline's own listener; its immediate runs after the pipeline's of the same turn.
    server.on('request', (req: IncomingMessage) => {
      note(req.url, 'received');
      setImmediate(() => note(req.url, 'turn ended'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('starts a request on an idle connection after the parse, in the same turn, and keeps pipelined ones in order', async () => {
    const connections = await Promise.all(Array.from({ length: 8 }, () => RawConnection.open(port)));
    for (let round = 0; round < 3; round++) {
      connections.forEach((connection, i) => connection.write(rawRequest('GET', `/kv/c${i}-r${round}`)));
      const answers = await Promise.all(connections.map((connection) => connection.responses(1)));
      answers.forEach((responses, i) => assert.equal(responses[0]!.body.toString(), `answer to /kv/c${i}-r${round}`));
    }
    for (let i = 0; i < connections.length; i++) {
      for (let round = 0; round < 3; round++) {
        assert.deepEqual(events.get(`/kv/c${i}-r${round}`), ['received', 'started', 'turn ended'], `request c${i}-r${round}`);
      }
    }
    // Pipelined in one write: the first waits for the check phase, the ones behind it start once the answer before them has left.
    connections[0]!.write(Buffer.concat([rawRequest('GET', '/kv/p1'), rawRequest('GET', '/kv/p2'), rawRequest('GET', '/kv/p3')]));
    const pipelined = await connections[0]!.responses(3);
    assert.deepEqual(
      pipelined.map((r) => r.body.toString()),
      ['answer to /kv/p1', 'answer to /kv/p2', 'answer to /kv/p3'],
    );
    for (const url of ['/kv/p1', '/kv/p2', '/kv/p3']) assert.deepEqual(events.get(url)?.slice(0, 2), ['received', 'started'], url);
    for (const connection of connections) connection.destroy();
  });
});

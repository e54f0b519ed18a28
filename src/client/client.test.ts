/**
 * The TypeScript client against a real in-process server: revisions,
 * conditions, and sessions — a write whose answer is lost is retried with the
 * same client id and seq and applied once.
 */
import assert from 'node:assert/strict';
import { type IncomingMessage, type Server, createServer, request } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ImpulseServer } from '../api/server.js';
import { isImpulseError } from '../errors.js';
import { openLocalKvService } from '../service/open-local.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { ImpulseClient } from './client.js';

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** Forwards one request to `target` and hands back the upstream answer. */
function forward(req: IncomingMessage, body: Buffer, target: number): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const upstream = request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body: Buffer.concat(chunks) }));
    });
    upstream.on('error', reject);
    upstream.end(body);
  });
}

describe('ImpulseClient', () => {
  let server: ImpulseServer;
  let port = 0;
  before(async () => {
    const service = await openLocalKvService({ engine: 'memory', dataDir: '', sync: 'fsync', limits: DEFAULT_LIMITS });
    server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test' });
    port = (await server.listen(0, '127.0.0.1')).port;
  });
  after(() => server.close());

  it('returns revisions and honours conditions on put, del and batch', async () => {
    const client = new ImpulseClient({ endpoint: `http://127.0.0.1:${port}` });
    try {
      const { revision } = await client.put('c/k', 'v1', { ifAbsent: true });
      assert.deepEqual(await client.getWithRevision('c/k'), { value: Buffer.from('v1'), revision });
      assert.deepEqual(await client.get('c/k', { consistency: 'serializable' }), Buffer.from('v1'));
      await assert.rejects(client.put('c/k', 'v2', { ifRevision: revision + 10 }), (error: unknown) => {
        assert.ok(isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED'));
        assert.deepEqual(error.details, { op: 0, key: 'c/k', revision });
        return true;
      });
      const swapped = await client.put('c/k', 'v2', { ifRevision: revision });
      assert.ok(swapped.revision > revision);
      const batch = await client.batch([
        { op: 'put', key: 'c/new', value: 'n', ifAbsent: true },
        { op: 'delete', key: 'c/k', ifRevision: swapped.revision },
      ]);
      assert.deepEqual((await client.scan({ prefix: 'c/' })).items, [{ key: Buffer.from('c/new'), value: Buffer.from('n'), revision: batch.revision }]);
      await assert.rejects(client.del('c/new', { ifRevision: 1 }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED'));
      assert.ok((await client.del('c/new', { ifRevision: batch.revision })).revision > batch.revision);
      assert.equal(await client.getWithRevision('c/new'), undefined);
      await assert.rejects(client.put('c/x', 'v', { ifRevision: 0 }), (error: unknown) => isImpulseError(error, 'IMPULSE_ERR_CONDITION_INVALID'));
    } finally {
      client.close();
    }
  });

  it('numbers its writes and retries a write whose answer was lost with the same seq: applied once', async () => {
    const seen: Array<Record<string, string | undefined>> = [];
    let dropNext = true;
    // A proxy that loses the first answer after the server applied the write.
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', async () => {
        seen.push({ id: req.headers['impulse-client-id'] as string, seq: req.headers['impulse-client-seq'] as string, acked: req.headers['impulse-client-acked-below'] as string });
        const answer = await forward(req, Buffer.concat(chunks), port);
        if (dropNext && req.method === 'PUT') {
          dropNext = false;
          req.socket.destroy(); // the write happened; its answer never arrives
          return;
        }
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      });
    });
    const proxyPort = await listen(proxy);
    const client = new ImpulseClient({ endpoint: `http://127.0.0.1:${proxyPort}`, clientId: 'retrying-client' });
    try {
      await client.put('r/other', 'x'); // seq 1 (its answer is the one dropped; retried)
      const { revision } = await client.put('r/k', 'once'); // seq 2
      await client.put('r/k2', 'twice'); // seq 3
      assert.deepEqual(
        seen.map((s) => [s.id, s.seq, s.acked]),
        [
          ['retrying-client', '1', '1'],
          ['retrying-client', '1', '1'],
          ['retrying-client', '2', '2'],
          ['retrying-client', '3', '3'],
        ],
      );
      // Applied once: the retry of seq 1 was answered from its session (it took index revision - 1 as a
      // no-op); had it been applied again, r/other would carry that later revision.
      assert.equal((await client.getWithRevision('r/k'))?.revision, revision);
      assert.equal((await client.getWithRevision('r/other'))?.revision, revision - 2);
    } finally {
      client.close();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});

describe('ImpulseClient on a keep-alive connection the server closed', () => {
  it('sends a GET once more on a new connection when its reused connection is reset before any answer; a write is not resent this way', async () => {
    // Each connection answers its first request and resets on its second: a server that closed an idle connection as the client reused it.
    let connections = 0;
    const server = createNetServer((socket) => {
      connections++;
      let requests = 0;
      socket.on('data', () => {
        if (++requests === 2) return void socket.resetAndDestroy();
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nETag: "1"\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx');
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = new ImpulseClient({ endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connectionsMax: 1 });
    try {
      assert.equal((await client.get('k'))?.toString(), 'x');
      assert.equal((await client.get('k'))?.toString(), 'x', 'the second GET went out again on a new connection');
      assert.equal(connections, 2);
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

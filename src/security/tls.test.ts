/**
 * The handshake guard of the client TLS listeners, on a real node:tls server:
 * the cap on handshakes in progress (a connection beyond it is closed
 * unhandshaken and counted; a completed handshake frees its place at once,
 * which relies on node:tls keeping the TCP socket as `_parent`), failures
 * counted under a bounded label, and the /metrics text.
 */
import assert from 'node:assert/strict';
import { type Socket, connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type TLSSocket, connect as tlsConnect, createServer } from 'node:tls';
import { pino } from 'pino';
import { TestPki } from '../../testkit/security/pki.js';
import { TlsHandshakeGuard, failureCodeLabel, renderTlsHandshakes, secureContextOptions } from './tls.js';

async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('TlsHandshakeGuard', () => {
  let pki: TestPki;
  before(async () => {
    pki = await TestPki.create(1);
  });
  after(() => pki.close());

  async function serve(handshakesMax: number): Promise<{ guard: TlsHandshakeGuard; port: number; served: TLSSocket[]; close: () => Promise<void> }> {
    const guard = new TlsHandshakeGuard({ listener: 'test', logger: pino({ level: 'silent' }), handshakesMax });
    const server = createServer({ ...secureContextOptions({ cert: pki.node(1).cert, key: pki.node(1).key }), handshakeTimeout: 30_000 });
    guard.attach(server);
    const served: TLSSocket[] = [];
    server.on('secureConnection', (socket: TLSSocket) => {
      served.push(socket);
      socket.end('hello');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    return {
      guard,
      port,
      served,
      close: async () => {
        guard.abortHandshakes();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  function handshake(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ port, host: '127.0.0.1', ca: pki.node(1).ca, servername: 'localhost' });
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
  }

  it('closes connections beyond the cap at once, counts them, and admits again when handshakes finish', async () => {
    const { guard, port, close } = await serve(2);
    const silent: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const socket = netConnect(port, '127.0.0.1');
        socket.on('error', () => undefined);
        silent.push(socket);
      }
      await until('two handshakes in progress', () => guard.inProgress === 2);
      const refused = netConnect(port, '127.0.0.1').resume();
      refused.on('error', () => undefined);
      await new Promise<void>((resolve) => refused.once('close', () => resolve()));
      assert.equal(guard.rejected, 1);
      assert.equal(guard.failed, 0, 'a connection closed at the cap is not a failed handshake');
      for (const socket of silent) socket.destroy();
      await until('the stalled handshakes to leave', () => guard.inProgress === 0);
      // Completed handshakes free their place: more than the cap, one after another, all get through.
      for (let i = 0; i < 4; i++) assert.equal(await handshake(port), 'hello');
      assert.equal(guard.completed, 4);
      assert.equal(guard.inProgress, 0);
      assert.equal(guard.failures.get('ECONNRESET'), 2, 'the two silent clients that hung up');
    } finally {
      for (const socket of silent) socket.destroy();
      await close();
    }
  });

  it('counts failures under a bounded label and renders every listener in one family each', async () => {
    const { guard, port, close } = await serve(8);
    try {
      const garbage = netConnect(port, '127.0.0.1').resume();
      garbage.on('error', () => undefined);
      garbage.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise<void>((resolve) => garbage.once('close', () => resolve()));
      await until('the failure counted', () => guard.failed === 1);
      assert.equal(guard.failures.get('ERR_SSL_HTTP_REQUEST'), 1);
      assert.equal(failureCodeLabel('ERR_SOMETHING_NEW'), 'other');
      assert.equal(failureCodeLabel(undefined), 'other');
      const other = new TlsHandshakeGuard({ listener: 'resp', logger: pino({ level: 'silent' }) });
      const text = renderTlsHandshakes([guard, other]);
      assert.equal(text.match(/^# TYPE impulse_tls_handshakes_total counter$/gm)?.length, 1);
      assert.match(text, /impulse_tls_handshakes_total\{listener="test"\} 0\nimpulse_tls_handshakes_total\{listener="resp"\} 0\n/);
      assert.match(text, /impulse_tls_handshake_failures_total\{listener="test",code="ERR_SSL_HTTP_REQUEST"\} 1/);
      assert.equal(renderTlsHandshakes([]), '');
      assert.throws(() => new TlsHandshakeGuard({ listener: 'x', logger: pino({ level: 'silent' }), handshakesMax: 0 }), RangeError);
    } finally {
      await close();
    }
  });
});

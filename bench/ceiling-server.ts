/**
 * The ceiling for the concurrent benchmark: a bare node:http server holding a
 * Map, answering the same routes as impulse (PUT/GET/DELETE /kv/{key}) with
 * the least work Node allows. No validation, no metrics, no engine. With
 * `--framework fastify` the same Map behind fastify, to measure the framework.
 * With `--tls-cert <file> --tls-key <file>` the bare server speaks HTTPS
 * (node:https, Node's default TLS settings and impulse's minimum version):
 * what TLS costs Node itself, beside what it costs impulse (bench/security.ts).
 * `--preload <n>` stores key0..key<n-1> (value "value-0000000000") before it listens.
 * Prints "listening <port>" on stdout.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { bareKvHandler } from './lib/bare-kv-handler.js';
import { flag } from './report.js';

const store = new Map<string, Buffer>();
// Exit normally on SIGTERM, so that `node --cpu-prof` writes its profile.
process.on('SIGTERM', () => process.exit(0));
const framework = flag('framework', 'node-http');
const tlsCertFile = flag('tls-cert', '');
const tlsKeyFile = flag('tls-key', '');
const preloadCount = Number(flag('preload', '0'));
for (let i = 0; i < preloadCount; i++) store.set(`key${i}`, Buffer.from('value-0000000000'));

if (framework === 'fastify') {
  const { fastify } = await import('fastify');
  const app = fastify({ logger: false });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.put('/kv/*', async (request, reply) => {
    store.set((request.params as { '*': string })['*'], request.body as Buffer);
    return reply.code(204).send();
  });
  app.get('/kv/*', async (request, reply) => {
    const value = store.get((request.params as { '*': string })['*']);
    if (value === undefined) return reply.code(404).header('content-type', 'application/json').send('{"error":{"code":"IMPULSE_ERR_KEY_NOT_FOUND"}}');
    return reply.header('content-type', 'application/octet-stream').send(value);
  });
  app.delete('/kv/*', async (request, reply) => {
    store.delete((request.params as { '*': string })['*']);
    return reply.code(204).send();
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  console.log(`listening ${(app.server.address() as AddressInfo).port}`);
} else {
  const handle = bareKvHandler(store);
  const server =
    tlsCertFile === ''
      ? createServer(handle)
      : createHttpsServer({ cert: readFileSync(tlsCertFile), key: readFileSync(tlsKeyFile), minVersion: 'TLSv1.2' }, handle);
  server.listen(0, '127.0.0.1', () => console.log(`listening ${(server.address() as AddressInfo).port}`));
}

/**
 * Tokens and TLS on the Redis protocol, in process (memory engine), with
 * ioredis and raw sockets: AUTH and HELLO AUTH against the token file, Redis's
 * NOAUTH / WRONGPASS / NOPERM wording, roles and key prefixes (every command
 * against a model of the rules, property), the small limits before AUTH, a
 * token file reload reaching open connections, and the listener over TLS
 * (client certificates, reload, a stalled or garbage handshake).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { Redis, type RedisOptions } from 'ioredis';
import { pino } from 'pino';
import { Authorizer, TokenTable } from '../security/auth.js';
import { openLocalKvService } from '../service/open-local.js';
import type { KvService } from '../service/kv-service.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { RawClient, multibulk, replyError } from '../../testkit/resp/raw-client.js';
import { TestPki } from '../../testkit/security/pki.js';
import { RespServer, type RespServerOptions } from './server.js';

const READ = 'read-token-0123456789';
const WRITE = 'write-token-0123456789';
const APP = 'app-token-0123456789ab';
const TOKENS = `reader read ${READ}\nwriter write ${WRITE}\napp write ${APP} app/\n`;
const NOAUTH = 'NOAUTH Authentication required.';
const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';
const KEYS_NOPERM = 'NOPERM this user has no permissions to access one of the keys used as arguments';

interface Node {
  readonly service: KvService;
  readonly server: RespServer;
  readonly auth: Authorizer;
  readonly port: number;
  readonly dir: string;
}

async function startNode(options: Partial<RespServerOptions> = {}): Promise<Node> {
  const dir = await mkdtemp(join(tmpdir(), 'impulse-resp-sec-'));
  const service = await openLocalKvService({ engine: 'memory', dataDir: dir, sync: 'none', limits: { ...DEFAULT_LIMITS, batchOpsMax: 10 } });
  const auth = new Authorizer(TokenTable.parse(TOKENS, 'tokens'), false);
  const server = new RespServer({ service, logger: pino({ level: 'silent' }), version: 'test', auth, ...options });
  const { port } = await server.listen(0, '127.0.0.1');
  return { service, server, auth, port, dir };
}

async function stopNode(node: Node): Promise<void> {
  await node.server.close();
  await node.service.close();
  await rm(node.dir, { recursive: true, force: true });
}

function client(node: Node, options: RedisOptions = {}): Redis {
  return new Redis({ port: node.port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true, enableReadyCheck: false, ...options });
}

describe('RESP with a token file', () => {
  let node: Node;
  before(async () => {
    node = await startNode();
  });
  after(() => stopNode(node));

  it('refuses every command but AUTH, HELLO and QUIT until AUTH, in Redis wording', async () => {
    const redis = client(node);
    await redis.connect();
    try {
      assert.equal(await replyError(redis.ping()), NOAUTH);
      assert.equal(await replyError(redis.get('app/a')), NOAUTH);
      assert.equal(await replyError(redis.call('INFO')), NOAUTH);
      assert.equal(await replyError(redis.call('HELLO', '3')), await replyError(redis.call('HELLO')));
      assert.match(await replyError(redis.call('HELLO', '3')), /^NOAUTH HELLO must be called with the client already authenticated/);
      assert.equal(await replyError(redis.call('AUTH', 'not-a-token-at-all')), WRONGPASS);
      assert.equal(await replyError(redis.call('AUTH', 'writer', READ)), WRONGPASS, "a token under another token's name");
      assert.equal(await replyError(redis.call('AUTH', 'nobody', WRITE)), WRONGPASS);
      assert.equal(await replyError(redis.ping()), NOAUTH, 'failed AUTHs leave the connection unauthenticated');
      assert.equal(await redis.call('AUTH', 'writer', WRITE), 'OK');
      assert.equal(await redis.set('k', 'v'), 'OK');
      assert.equal(await redis.call('AUTH', 'default', READ), 'OK', 'the default user takes any token');
      assert.equal(await replyError(redis.set('k', 'w')), "NOPERM this user has no permissions to run the 'set' command");
      assert.equal(await replyError(redis.call('AUTH', 'bad-token-0123456789')), WRONGPASS);
      assert.equal(await redis.get('k'), 'v', 'a failed AUTH keeps the identity the connection had');
    } finally {
      redis.disconnect();
    }
  });

  it('authenticates with ioredis options (password alone, user and password) and with HELLO 3 AUTH', async () => {
    const byPassword = client(node, { password: WRITE });
    const byUser = client(node, { username: 'app', password: APP });
    await byPassword.connect();
    await byUser.connect();
    try {
      assert.equal(await byPassword.set('plain', '1'), 'OK');
      assert.equal(await byUser.set('app/1', '1'), 'OK');
      assert.equal(await replyError(byUser.set('plain', '2')), KEYS_NOPERM);
    } finally {
      byPassword.disconnect();
      byUser.disconnect();
    }
    const raw = new RawClient(node.port);
    try {
      raw.send(multibulk('HELLO', '3', 'AUTH', 'app', APP, 'SETNAME', 'me'));
      raw.send(multibulk('GET', 'app/1'));
      const text = await raw.until((received) => received.endsWith('$1\r\n1\r\n'));
      assert.match(text, /^%8\r\n/, 'a RESP3 map');
      assert.match(text, /proto\r\n:3\r\n/);
    } finally {
      raw.socket.destroy();
    }
  });

  it('holds a connection to small commands until AUTH, and takes what follows AUTH in the same write with the full limits', async () => {
    const big = Buffer.alloc(100 * 1024, 0x61);
    const raw = new RawClient(node.port);
    try {
      raw.send(Buffer.concat([multibulk('AUTH', APP), multibulk('SET', 'app/big', big), multibulk('STRLEN', 'x'), multibulk('GET', 'app/missing')]));
      const text = await raw.until((received) => received.endsWith('$-1\r\n'));
      assert.equal(text, "+OK\r\n+OK\r\n-ERR unknown command 'STRLEN', with args beginning with: 'x' \r\n$-1\r\n");
      assert.equal((await node.service.get(Buffer.from('app/big')))?.value.length, big.length);
    } finally {
      raw.socket.destroy();
    }
    // Before AUTH, as in Redis: a bulk over 16 KiB or more than 10 arguments is a protocol error, and the connection closes.
    for (const command of [multibulk('SET', 'app/big', big), multibulk('MSET', ...Array.from({ length: 12 }, (_, i) => `k${i}`))]) {
      const stranger = new RawClient(node.port);
      stranger.send(command);
      await stranger.closed;
      assert.match(await stranger.until(() => true), /^-ERR Protocol error: invalid (bulk|multibulk) length\r\n$/);
    }
  });

  it('applies a reload of the token file to open connections at their next command', async () => {
    const redis = client(node, { password: READ });
    await redis.connect();
    try {
      assert.equal(await redis.get('app/1'), '1');
      node.auth.reload(TokenTable.parse(`reader write ${READ}\n`, 'tokens'));
      assert.equal(await redis.set('app/2', '2'), 'OK', 'the role was raised to write');
      node.auth.reload(TokenTable.parse(`writer write ${WRITE}\n`, 'tokens'));
      assert.equal(await replyError(redis.get('app/1')), NOAUTH, 'the token is gone');
    } finally {
      node.auth.reload(TokenTable.parse(TOKENS, 'tokens'));
      redis.disconnect();
    }
  });

  it('counts refusals in /metrics by reason', () => {
    const text = node.server.metrics.render();
    for (const reason of ['wrongpass', 'noauth', 'noperm']) {
      const match = new RegExp(`impulse_resp_auth_refusals_total\\{reason="${reason}"\\} (\\d+)`).exec(text);
      assert.ok(match !== null && Number(match[1]) > 0, `${reason} counted:\n${text}`);
    }
  });

  it('SCAN with a prefix-limited token: only a MATCH inside the prefix', async () => {
    const redis = client(node, { username: 'app', password: APP });
    await redis.connect();
    try {
      await redis.mset('app/s1', '1', 'app/s2', '2');
      assert.equal(await replyError(redis.scan('0')), KEYS_NOPERM);
      assert.equal(await replyError(redis.scan('0', 'MATCH', 'a*')), KEYS_NOPERM, 'the pattern reaches keys outside app/');
      const [, keys] = await redis.scan('0', 'MATCH', 'app/s*', 'COUNT', '100');
      assert.deepEqual(keys, ['app/s1', 'app/s2']);
      assert.equal(typeof (await redis.dbsize()), 'number', 'DBSIZE is the figure /status shows any token');
    } finally {
      redis.disconnect();
    }
  });

  /**
   * Every key command against the rules: a token (role, prefix) may run a
   * command iff writes need write and every key starts with its prefix. The
   * reply is NOPERM exactly when the model refuses, and a refused write
   * changes nothing.
   */
  it('decides like the model for random tokens, commands and keys (property)', async () => {
    const tokens = { reader: { token: READ, write: false, prefix: '' }, writer: { token: WRITE, write: true, prefix: '' }, app: { token: APP, write: true, prefix: 'app/' } };
    const connections = Object.fromEntries(await Promise.all(Object.entries(tokens).map(async ([name, { token }]) => {
      const redis = client(node, { username: name, password: token });
      await redis.connect();
      return [name, redis] as const;
    })));
    const key = fc.oneof(fc.constantFrom('app/p', 'app/q', 'ap', 'other', 'app', 'app/'), fc.string({ minLength: 1, maxLength: 4 }).map((tail) => `app/${tail}`));
    const command = fc.oneof(
      fc.tuple(fc.constant('GET'), key).map(([name, k]) => ({ name, args: [k], write: false, keys: [k] })),
      fc.tuple(fc.constant('SET'), key).map(([name, k]) => ({ name, args: [k, 'v'], write: true, keys: [k] })),
      fc.tuple(fc.constantFrom('DEL', 'EXISTS', 'MGET'), fc.array(key, { minLength: 1, maxLength: 3 })).map(([name, ks]) => ({ name, args: ks, write: name === 'DEL', keys: ks })),
      fc.tuple(fc.constant('MSET'), fc.array(key, { minLength: 1, maxLength: 3 })).map(([name, ks]) => ({ name, args: ks.flatMap((k) => [k, 'm']), write: true, keys: ks })),
    );
    try {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...(Object.keys(tokens) as (keyof typeof tokens)[])), command, async (who, { name, args, write, keys }) => {
          const token = tokens[who];
          const allowed = (!write || token.write) && keys.every((k) => k.startsWith(token.prefix));
          const before = await node.service.range({ limit: 1000 });
          let reply: string;
          try {
            reply = JSON.stringify(await connections[who]!.call(name, ...args));
          } catch (error) {
            reply = (error as Error).message;
          }
          assert.equal(reply.startsWith('NOPERM'), !allowed, `${who} ${name} ${args.join(' ')}: ${reply}`);
          if (!allowed) assert.deepEqual(await node.service.range({ limit: 1000 }), before, 'a refused command changed nothing');
        }),
        { numRuns: 150 },
      );
    } finally {
      for (const redis of Object.values(connections)) redis.disconnect();
    }
  });
});

describe('RESP over TLS', () => {
  let pki: TestPki;
  before(async () => {
    pki = await TestPki.create(1);
  });
  after(() => pki.close());

  it('serves ioredis over TLS with a token; a plain-TCP client gets no reply', async () => {
    const certs = pki.node(1);
    const node = await startNode({ tls: { cert: certs.cert, key: certs.key } });
    const redis = client(node, { password: WRITE, tls: { ca: certs.ca, servername: 'localhost' } });
    try {
      await redis.connect();
      assert.equal(await redis.set('tls', 'yes'), 'OK');
      assert.equal(await redis.get('tls'), 'yes');
      const plain = new RawClient(node.port);
      plain.send(multibulk('PING'));
      await plain.closed;
      assert.doesNotMatch(await plain.until(() => true), /PONG/);
      assert.ok(node.server.tlsHandshakes!.completed >= 1);
      assert.ok(node.server.tlsHandshakes!.failed >= 1, 'the plain client counted as a failed handshake');
    } finally {
      redis.disconnect();
      await stopNode(node);
    }
  });

  it('requires a client certificate with a client CA; reloads the certificate for new connections', async () => {
    const certs = pki.node(1);
    const node = await startNode({ tls: { cert: certs.cert, key: certs.key, ca: certs.ca } });
    const certified = client(node, { password: WRITE, tls: { ca: certs.ca, servername: 'localhost', cert: pki.get('client').cert, key: pki.get('client').key } });
    try {
      // Without a certificate: under TLS 1.3 the client learns of the refusal after its side of the handshake; it never gets a reply.
      const anonymous = new RawClient(node.port, tlsConnect({ port: node.port, host: '127.0.0.1', ca: certs.ca, servername: 'localhost' }));
      anonymous.send(multibulk('AUTH', WRITE));
      await anonymous.closed;
      assert.equal(await anonymous.until(() => true), '');
      await certified.connect();
      assert.equal(await certified.ping(), 'PONG');
      // A reload to a certificate from another CA: new connections see it (and this client, trusting only the cluster CA, refuses it).
      node.server.setTls({ cert: pki.get('foreign-2').cert, key: pki.get('foreign-2').key, ca: certs.ca });
      const socket = tlsConnect({ port: node.port, host: '127.0.0.1', ca: certs.ca, servername: 'localhost', cert: pki.get('client').cert, key: pki.get('client').key });
      const error = await new Promise<Error & { code?: string }>((resolve) => socket.once('error', resolve));
      assert.match(String(error.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
      assert.equal(await certified.ping(), 'PONG', 'an open connection keeps its session');
    } finally {
      certified.disconnect();
      await stopNode(node);
    }
  });

  it('cuts a stalled handshake after the timeout and survives garbage', async () => {
    const certs = pki.node(1);
    const node = await startNode({ tls: { cert: certs.cert, key: certs.key }, tlsHandshakeTimeoutMs: 300 });
    try {
      const silent = netConnect(node.port, '127.0.0.1').resume();
      silent.on('error', () => undefined);
      const started = performance.now();
      await new Promise<void>((resolve) => silent.once('close', () => resolve()));
      assert.ok(performance.now() - started < 10_000);
      for (const bytes of [Buffer.from('\x16\x03\x01\x00\x05garbage'), Buffer.alloc(4096, 0xab)]) {
        const garbage = new RawClient(node.port);
        garbage.send(bytes);
        await garbage.closed;
      }
      assert.equal(node.server.tlsHandshakes!.failures.get('ERR_TLS_HANDSHAKE_TIMEOUT'), 1);
      assert.ok(node.server.tlsHandshakes!.failed >= 3);
      const redis = client(node, { password: READ, tls: { ca: certs.ca, servername: 'localhost' } });
      await redis.connect();
      assert.equal(await redis.ping(), 'PONG');
      redis.disconnect();
    } finally {
      await stopNode(node);
    }
  });
});

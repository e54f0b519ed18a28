/**
 * The RESP server in this process over a real single-node service (memory
 * engine), driven by ioredis and by raw sockets: every command, errors in
 * Redis's wording, binary values, pipelining against a model, limits, a
 * client that never reads, shutdown.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ImpulseError } from '../errors.js';
import type { KvCommand } from '../kv/command.js';
import type { KvService } from '../service/kv-service.js';
import { openLocalKvService } from '../service/open-local.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { RespServer, type RespServerOptions } from './server.js';
import { RawClient, multibulk, replyError } from '../../testkit/resp/raw-client.js';

const LIMITS = { ...DEFAULT_LIMITS, keyBytesMax: 64, valueBytesMax: 64 * 1024, batchOpsMax: 10 };

interface Node {
  readonly service: KvService;
  readonly server: RespServer;
  readonly port: number;
  readonly dir: string;
}

async function startNode(options: Partial<RespServerOptions> = {}, wrap: (service: KvService) => KvService = (service) => service): Promise<Node> {
  const dir = await mkdtemp(join(tmpdir(), 'impulse-resp-'));
  const service = wrap(await openLocalKvService({ engine: 'memory', dataDir: dir, sync: 'none', limits: LIMITS }));
  const server = new RespServer({ service, logger: pino({ level: 'silent' }), version: 'test', ...options });
  const { port } = await server.listen(0, '127.0.0.1');
  return { service, server, port, dir };
}

async function stopNode(node: Node): Promise<void> {
  await node.server.close();
  await node.service.close();
  await rm(node.dir, { recursive: true, force: true });
}

describe('RESP server (ioredis, in process, memory engine)', () => {
  let node: Node;
  let redis: Redis;

  before(async () => {
    node = await startNode();
    redis = new Redis({ port: node.port, host: '127.0.0.1', maxRetriesPerRequest: 0, lazyConnect: true });
    await redis.connect();
  });
  after(async () => {
    redis.disconnect();
    await stopNode(node);
  });

  it('writes the replies of a turn at its end, not inside the socket\'s data event (util/end-of-turn.ts)', async () => {
    // The accepted socket on the server side, seen from a listener that runs right after the connection's own.
    const listener = (node.server as unknown as { server: NetServer }).server;
    const seen: Array<{ before: number; inData: number; atTurnEnd: number }> = [];
    listener.once('connection', (socket: Socket) => {
      let before = 0;
      socket.prependListener('data', () => (before = socket.bytesWritten));
      socket.on('data', () => {
        const record = { before, inData: socket.bytesWritten, atTurnEnd: -1 };
        seen.push(record);
        // Scheduled after the server's end-of-turn queue (asked during the connection's data event): runs after it.
        setImmediate(() => (record.atTurnEnd = socket.bytesWritten));
      });
    });
    await redis.set('turn', 'value');
    const client = new RawClient(node.port);
    for (let round = 1; round <= 3; round++) {
      client.send(multibulk('GET', 'turn'));
      await client.until((text) => text.split('$5\r\nvalue\r\n').length === round + 1);
    }
    client.socket.destroy();
    assert.equal(seen.length, 3);
    for (const record of seen) {
      assert.equal(record.inData, record.before, `a reply left inside the data event: ${JSON.stringify(record)}`);
      assert.ok(record.atTurnEnd > record.before, `the reply had not left at the end of the turn: ${JSON.stringify(record)}`);
    }
  });

  it('answers the connection commands', async () => {
    assert.equal(await redis.ping(), 'PONG');
    assert.equal(await redis.call('PING', 'hi'), 'hi');
    assert.equal(await redis.echo('hello'), 'hello');
    assert.equal(await redis.select(0), 'OK');
    assert.equal(await replyError(redis.select(1)), 'ERR DB index is out of range');
    assert.equal(await replyError(redis.call('SELECT', 'x')), 'ERR value is not an integer or out of range');
    assert.equal(await redis.client('SETNAME', 'tester'), 'OK');
    assert.equal(await redis.client('GETNAME'), 'tester');
    assert.equal(typeof (await redis.client('ID')), 'number');
    assert.equal(await replyError(redis.client('SETNAME', 'a b')), 'ERR Client names cannot contain spaces, newlines or special characters.');
    assert.equal(await replyError(redis.call('CLIENT', 'KILL', 'x')), "ERR unknown subcommand 'KILL'. Try CLIENT HELP.");
    assert.equal(await redis.call('READONLY'), 'OK');
    assert.equal(await redis.call('READWRITE'), 'OK');
  });

  it('answers AUTH as Redis does with no password configured', async () => {
    assert.equal(
      await replyError(redis.call('AUTH', 'secret')),
      'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
    );
    assert.equal(await redis.call('AUTH', 'default', 'anything'), 'OK');
    assert.equal(await replyError(redis.call('AUTH', 'alice', 'x')), 'WRONGPASS invalid username-password pair or user is disabled.');
  });

  it('sets and gets, with NX, XX and GET mapped onto conditional writes', async () => {
    assert.equal(await redis.set('s:a', '1'), 'OK');
    assert.equal(await redis.get('s:a'), '1');
    assert.equal(await redis.get('s:none'), null);
    assert.equal(await redis.set('s:a', '2', 'NX'), null, 'NX on a present key does nothing');
    assert.equal(await redis.set('s:b', '1', 'NX'), 'OK');
    assert.equal(await redis.set('s:c', '1', 'XX'), null, 'XX on an absent key does nothing');
    assert.equal(await redis.get('s:c'), null);
    assert.equal(await redis.set('s:a', '3', 'XX'), 'OK');
    assert.equal(await redis.call('SET', 's:a', '4', 'GET'), '3');
    assert.equal(await redis.call('SET', 's:new', '1', 'GET'), null);
    assert.equal(await redis.get('s:new'), '1');
    assert.equal(await redis.call('SET', 's:a', '5', 'NX', 'GET'), '4', 'NX GET on a present key returns the value, sets nothing');
    assert.equal(await redis.get('s:a'), '4');
    assert.equal(await redis.call('SET', 's:a', '6', 'KEEPTTL'), 'OK');
    assert.equal(await replyError(redis.call('SET', 's:a', '1', 'NX', 'XX')), 'ERR syntax error');
    assert.equal(await replyError(redis.call('SET', 's:a', '1', 'BOGUS')), 'ERR syntax error');
    assert.match(await replyError(redis.call('SET', 's:a', '1', 'EX', '10')), /^ERR impulse keeps no expiry/);
    assert.equal(await replyError(redis.call('SET', 's:a')), "ERR wrong number of arguments for 'set' command");
  });

  it('deletes and counts exactly, checks existence, reads and writes several keys', async () => {
    await redis.mset('m:a', '1', 'm:b', '2', 'm:c', '3');
    assert.deepEqual(await redis.mget('m:a', 'm:b', 'm:none', 'm:c'), ['1', '2', null, '3']);
    assert.equal(await redis.exists('m:a', 'm:a', 'm:none'), 2, 'a repeated key counts each time');
    assert.equal(await redis.del('m:a', 'm:a', 'm:none'), 1, 'a repeated key is deleted once');
    assert.equal(await redis.unlink('m:b', 'm:c'), 2);
    assert.equal(await redis.exists('m:a', 'm:b', 'm:c'), 0);
    assert.equal(await redis.del('m:none'), 0);
    assert.equal(await redis.msetnx('n:a', '1', 'n:b', '2'), 1);
    assert.equal(await redis.msetnx('n:c', '3', 'n:a', '9'), 0, 'one present key: nothing is set');
    assert.equal(await redis.get('n:c'), null);
    assert.equal(await replyError(redis.call('MSET', 'a', '1', 'b')), "ERR wrong number of arguments for 'mset' command");
    const tooMany = Array.from({ length: 11 }, (_, i) => [`t:${i}`, 'v']).flat();
    assert.match(await replyError(redis.call('MSET', ...tooMany)), /^ERR .*IMPULSE_ERR_BATCH_TOO_LARGE/);
  });

  it('scans every key once in key order, with MATCH on a prefix or a glob and COUNT', async () => {
    const keys = Array.from({ length: 57 }, (_, i) => `scan:${String(i).padStart(3, '0')}`);
    await redis.mset(...keys.slice(0, 10).flatMap((key) => [key, 'v']));
    for (let i = 10; i < keys.length; i += 10) await redis.mset(...keys.slice(i, i + 10).flatMap((key) => [key, 'v']));
    await redis.mset('scam', 'x', 'scan', 'x');
    const all = async (...options: string[]): Promise<string[]> => {
      const found: string[] = [];
      let cursor = '0';
      do {
        const [next, page] = (await redis.call('SCAN', cursor, ...options)) as [string, string[]];
        found.push(...page);
        cursor = next;
      } while (cursor !== '0');
      return found;
    };
    assert.deepEqual(await all('MATCH', 'scan:*', 'COUNT', '7'), keys);
    assert.deepEqual(await all('MATCH', 'scan:*5', 'COUNT', '5'), keys.filter((key) => key.endsWith('5')));
    assert.deepEqual(await all('MATCH', 'scan:0[1-2]?', 'COUNT', '1000'), keys.filter((key) => /^scan:0[12].$/.test(key)));
    assert.deepEqual(await all('MATCH', 'scan:*', 'TYPE', 'hash'), []);
    // ioredis's scanStream, as applications use it.
    const streamed: string[] = [];
    for await (const page of redis.scanStream({ match: 'scan:*', count: 20 })) streamed.push(...(page as string[]));
    assert.deepEqual(streamed, keys);
    assert.equal(await replyError(redis.call('SCAN', '12345')), 'ERR invalid cursor');
    assert.equal(await replyError(redis.call('SCAN', 'abc')), 'ERR invalid cursor');
    assert.equal(await replyError(redis.call('SCAN', '0', 'COUNT', '0')), 'ERR syntax error');
    assert.equal(await replyError(redis.call('SCAN', '0', 'COUNT', 'x')), 'ERR value is not an integer or out of range');
    assert.equal(await replyError(redis.call('SCAN', '0', 'MATCH')), 'ERR syntax error');
  });

  it('reports DBSIZE, INFO and COMMAND', async () => {
    await redis.set('info:k', 'v');
    const status = await node.service.status();
    assert.equal(await redis.dbsize(), status.keyCount);
    const info = await redis.info();
    for (const section of ['# Server', '# Clients', '# Persistence', '# Stats', '# Replication', '# Keyspace']) assert.ok(info.includes(section), section);
    assert.match(info, /\r\nloading:0\r\n/);
    assert.match(info, /redis_version:7\.0\.0/);
    assert.match(info, new RegExp(`db0:keys=${status.keyCount},expires=0`));
    assert.match(await redis.info('keyspace'), /^# Keyspace\r\n/);
    const count = (await redis.call('COMMAND', 'COUNT')) as number;
    assert.ok(count >= 20);
    const [entry] = (await redis.call('COMMAND', 'INFO', 'get')) as unknown[][];
    assert.deepEqual(entry!.slice(0, 6), ['get', 2, ['readonly', 'fast'], 1, 1, 1]);
    assert.equal(((await redis.call('COMMAND')) as unknown[]).length, count);
  });

  it('answers unknown commands and wrong arity in Redis\'s wording', async () => {
    assert.equal(await replyError(redis.call('FLUSHALL')), "ERR unknown command 'FLUSHALL', with args beginning with: ");
    assert.equal(await replyError(redis.call('HSET', 'h', 'f', 'v')), "ERR unknown command 'HSET', with args beginning with: 'h' 'f' 'v' ");
    assert.equal(await replyError(redis.call('GET')), "ERR wrong number of arguments for 'get' command");
    assert.equal(await replyError(redis.call('ECHO', 'a', 'b')), "ERR wrong number of arguments for 'echo' command");
  });

  it('refuses keys and values over the limits with an error reply, and the connection goes on', async () => {
    assert.match(await replyError(redis.set('k'.repeat(65), 'v')), /^ERR key is 65 bytes; the limit is 64 \(IMPULSE_ERR_KEY_TOO_LARGE\)$/);
    assert.match(await replyError(redis.set('', 'v')), /IMPULSE_ERR_KEY_EMPTY/);
    assert.match(await replyError(redis.set('big', Buffer.alloc(64 * 1024 + 1))), /IMPULSE_ERR_VALUE_TOO_LARGE/);
    assert.equal(await redis.set('big', Buffer.alloc(64 * 1024, 7)), 'OK');
    assert.equal((await redis.getBuffer('big'))!.length, 64 * 1024);
    assert.equal(await redis.ping(), 'PONG');
  });

  it('keeps keys and values binary-safe: every byte value, CR and LF included', async () => {
    const key = Buffer.from([0, 13, 10, 0xff, 0x80, 0x20, 0x24, 0x2a]);
    const value = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    assert.equal(await redis.set(key, value), 'OK');
    assert.deepEqual(await redis.getBuffer(key), value);
    assert.deepEqual(await redis.mgetBuffer(key, Buffer.from('absent')), [value, null]);
    const [, page] = (await redis.callBuffer('SCAN', '0', 'MATCH', Buffer.concat([key.subarray(0, 3), Buffer.from('*')]), 'COUNT', '100')) as [Buffer, Buffer[]];
    assert.deepEqual(page, [key]);
    assert.equal(await redis.del(key), 1);
  });

  it('answers a pipeline in order, as a sequential model would (property)', async () => {
    const keyName = fc.constantFrom('p:a', 'p:b', 'p:c');
    const op = fc.oneof(
      fc.tuple(fc.constant('set'), keyName, fc.string({ maxLength: 5 })),
      fc.tuple(fc.constant('setnx'), keyName, fc.string({ maxLength: 5 })),
      fc.tuple(fc.constant('setget'), keyName, fc.string({ maxLength: 5 })),
      fc.tuple(fc.constant('get'), keyName),
      fc.tuple(fc.constant('del'), keyName),
      fc.tuple(fc.constant('exists'), keyName),
      fc.tuple(fc.constant('echo'), fc.string({ maxLength: 5 })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
        await redis.del('p:a', 'p:b', 'p:c');
        const model = new Map<string, string>();
        const expected: unknown[] = [];
        const pipeline = redis.pipeline();
        for (const [name, a, b] of ops as [string, string, string?][]) {
          if (name === 'set') {
            pipeline.set(a, b!);
            model.set(a, b!);
            expected.push('OK');
          } else if (name === 'setnx') {
            pipeline.set(a, b!, 'NX');
            expected.push(model.has(a) ? null : 'OK');
            if (!model.has(a)) model.set(a, b!);
          } else if (name === 'setget') {
            pipeline.call('SET', a, b!, 'GET');
            expected.push(model.get(a) ?? null);
            model.set(a, b!);
          } else if (name === 'get') {
            pipeline.get(a);
            expected.push(model.get(a) ?? null);
          } else if (name === 'del') {
            pipeline.del(a);
            expected.push(model.delete(a) ? 1 : 0);
          } else if (name === 'exists') {
            pipeline.exists(a);
            expected.push(model.has(a) ? 1 : 0);
          } else {
            pipeline.echo(a);
            expected.push(a);
          }
        }
        const results = await pipeline.exec();
        assert.deepEqual(results!.map(([error, value]) => (error ? `error: ${error.message}` : value)), expected);
      }),
      { numRuns: 40 },
    );
  });

  it('answers a pipeline of large and small replies whole and in order (engine reads answered at once)', async () => {
    await pipelineOfLargeAndSmallReplies(redis);
  });

  it('applies the SETs of many clients sent at once (coalesced across connections), each acknowledged one read back', async () => {
    const clients = Array.from({ length: 12 }, () => new Redis({ port: node.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 }));
    try {
      await Promise.all(clients.map((client) => client.connect()));
      const before = (await node.service.status()).appliedIndex;
      await Promise.all(
        clients.map(async (client, c) => {
          for (let round = 0; round < 10; round++) {
            assert.equal(await client.set(`many:${c}`, `${c}:${round}`), 'OK');
            assert.equal(await client.get(`many:${c}`), `${c}:${round}`);
          }
        }),
      );
      assert.deepEqual(await redis.mget(clients.map((_, c) => `many:${c}`)), clients.map((_, c) => `${c}:9`));
      assert.ok((await node.service.status()).appliedIndex - before <= clients.length * 10);
    } finally {
      for (const client of clients) client.disconnect();
    }
  });

  it('applies a pipeline of plain writes as one command, yet fails only the invalid one in it', async () => {
    const before = (await node.service.status()).appliedIndex;
    const pipeline = redis.pipeline();
    for (let i = 0; i < 8; i++) pipeline.set(`g:${i}`, String(i));
    pipeline.set('k'.repeat(65), 'too long a key');
    pipeline.mset('g:8', '8', 'g:0', 'last write wins');
    pipeline.get('g:0');
    const results = await pipeline.exec();
    assert.deepEqual(results!.slice(0, 8).map(([error, value]) => error ?? value), Array(8).fill('OK'));
    assert.match(results![8]![0]!.message, /IMPULSE_ERR_KEY_TOO_LARGE/);
    assert.deepEqual(results!.slice(9).map(([error, value]) => error ?? value), ['OK', 'last write wins']);
    // Eight SETs in one command, then the MSET: two writes, not nine (the refused one consumes none).
    assert.ok((await node.service.status()).appliedIndex - before <= 2, 'consecutive plain writes share one command');
    assert.deepEqual(await redis.mget('g:7', 'g:8'), ['7', '8']);
  });

  it('answers a command that answers at once after a put group it waited for (redis-cli --pipe ends with ECHO)', async () => {
    const raw = new RawClient(node.port);
    raw.send(Buffer.concat([multibulk('SET', 'pg:a', '1'), multibulk('SET', 'pg:b', '2'), multibulk('ECHO', 'done')]));
    assert.equal(await raw.until((text) => text.includes('done')), '+OK\r\n+OK\r\n$4\r\ndone\r\n');
    raw.socket.destroy();
  });

  it('speaks RESP3 after HELLO 3: nulls and maps', async () => {
    const raw = new RawClient(node.port);
    raw.send(multibulk('HELLO', '3', 'SETNAME', 'r3'));
    const hello = await raw.until((text) => text.includes('impulse_version'));
    assert.match(hello, /^%8\r\n/);
    assert.match(hello, /\$5\r\nproto\r\n:3\r\n/);
    raw.send(multibulk('GET', 'r3:absent'));
    raw.send(multibulk('CLIENT', 'GETNAME'));
    const text = await raw.until((received) => received.endsWith('$2\r\nr3\r\n'));
    assert.ok(text.includes('_\r\n$2\r\nr3\r\n'));
    raw.send(multibulk('HELLO', '4'));
    assert.match(await raw.until((received) => received.includes('NOPROTO')), /-NOPROTO unsupported protocol version\r\n$/);
    raw.socket.destroy();
  });

  it('reads inline commands, closes after QUIT, and after a protocol error once the replies before it are sent', async () => {
    const inline = new RawClient(node.port);
    inline.send('SET inline:k "a b"\r\nGET inline:k\r\nQUIT\r\nPING\r\n');
    assert.equal(await inline.until((text) => text.endsWith('+OK\r\n') && text.length > 10), '+OK\r\n$3\r\na b\r\n+OK\r\n');
    await inline.closed;

    const broken = new RawClient(node.port);
    broken.send(Buffer.concat([multibulk('PING'), Buffer.from('*1\r\n+PING\r\n'), multibulk('PING')]));
    await broken.closed;
    assert.equal(await broken.until(() => true), "+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n");
  });

  it('answers everything a client sent before it half-closed, then ends', async () => {
    const raw = new RawClient(node.port);
    raw.socket.end(Buffer.concat([multibulk('SET', 'half', 'closed'), multibulk('GET', 'half'), multibulk('DEL', 'half')]));
    await raw.closed;
    assert.equal(await raw.until(() => true), '+OK\r\n$6\r\nclosed\r\n:1\r\n');
  });

  it('answers a command with an argument over the limit without reading it into memory, and stays open', async () => {
    const raw = new RawClient(node.port);
    raw.send(Buffer.concat([multibulk('SET', 'huge', Buffer.alloc(200 * 1024, 1)), multibulk('PING')]));
    const text = await raw.until((received) => received.endsWith('+PONG\r\n'));
    assert.match(text, /^-ERR the command's arguments are 204807 bytes or more; an argument may have at most 65536 bytes .*\(IMPULSE_ERR_VALUE_TOO_LARGE\)\r\n\+PONG\r\n$/);
    assert.equal(await redis.exists('huge'), 0);
    // Even the command name may be over the limit: the same answer, no crash.
    raw.send(Buffer.concat([multibulk(Buffer.alloc(100 * 1024, 0x41)), multibulk('PING')]));
    assert.match(await raw.until((received) => received.split('+PONG').length === 3), /-ERR the command's arguments are 102400 bytes .*\r\n\+PONG\r\n$/);
    raw.socket.destroy();
  });

  it('counts commands and connections in its metrics', async () => {
    const text = node.server.metrics.render();
    assert.match(text, /impulse_resp_commands_total\{command="get",result="ok"\} [1-9]/);
    assert.match(text, /impulse_resp_commands_total\{command="unknown",result="error"\} [1-9]/);
    assert.match(text, /impulse_resp_connections [1-9]/);
    assert.match(text, /impulse_resp_disconnects_total\{reason="quit"\} 1/);
    assert.match(text, /impulse_resp_disconnects_total\{reason="protocol_error"\} 1/);
    assert.match(text, /impulse_resp_command_duration_seconds_bucket\{le="\+Inf",command="set"\} [1-9]/);
  });

  it('counts each command of one pipelined read under its own name, and INFO after them sees them counted', async () => {
    const counter = (text: string, command: string, result: string): number => Number(new RegExp(`impulse_resp_commands_total\\{command="${command}",result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    const before = node.server.metrics.render();
    const totalBefore = node.server.metrics.commandsTotal;
    const raw = new RawClient(node.port);
    // GET, PING and the unknown command are answered inside the read and counted at the end of it; INFO reads the count after them.
    raw.send(Buffer.concat([multibulk('GET', 'count-a'), multibulk('PING'), multibulk('GET', 'count-b'), multibulk('NOSUCH'), multibulk('PING'), multibulk('INFO', 'stats')]));
    const text = await raw.until((received) => received.includes('total_commands_processed'));
    raw.socket.destroy();
    assert.equal(Number(/total_commands_processed:(\d+)/.exec(text)![1]), totalBefore + 5);
    const after = node.server.metrics.render();
    assert.equal(counter(after, 'get', 'ok') - counter(before, 'get', 'ok'), 2);
    assert.equal(counter(after, 'ping', 'ok') - counter(before, 'ping', 'ok'), 2);
    assert.equal(counter(after, 'unknown', 'error') - counter(before, 'unknown', 'error'), 1);
    assert.ok(counter(after, 'info', 'ok') - counter(before, 'info', 'ok') >= 1);
  });
});

/**
 * The real single-node service, refusing (before applying anything) a write whose keys start
 * with different bytes, as the sharded service refuses a batch across shards.
 */
/**
 * SETs and GETs of values from a few bytes to the value limit (replies on both
 * sides of the connection's 64 KiB coalescing size), an absent key and an
 * error between them: every reply whole, in order.
 */
async function pipelineOfLargeAndSmallReplies(redis: Redis): Promise<void> {
  const sizes = [1, 3, LIMITS.valueBytesMax, 10, LIMITS.valueBytesMax - 20, 0, 40_000, 40_000, 2];
  const values = sizes.map((size, i) => Buffer.alloc(size, 0x61 + i));
  const pipeline = redis.pipeline();
  values.forEach((value, i) => pipeline.set(`mixed:${i}`, value));
  values.forEach((_, i) => pipeline.getBuffer(`mixed:${i}`).call('NOSUCHCOMMAND').getBuffer('mixed:absent'));
  const results = (await pipeline.exec())!.map(([error, value]) => (error ? error.message : value));
  assert.deepEqual(results.slice(0, values.length), values.map(() => 'OK'));
  const expected = values.flatMap((value) => [value, "ERR unknown command 'NOSUCHCOMMAND', with args beginning with: ", null]);
  assert.deepEqual(results.slice(values.length), expected);
}

/** The service without `getSync`: every GET waits for the engine's promise (as on lsm or under Raft). */
function readingOnlyAsynchronously(service: KvService): KvService {
  return new Proxy(service, {
    get: (target, property, receiver) => (property === 'getSync' ? undefined : (Reflect.get(target, property, receiver) as unknown)),
  });
}

describe('RESP server on a service that reads only asynchronously', () => {
  it('answers GETs in order among other replies, whole, as with reads answered at once', async () => {
    const node = await startNode({}, readingOnlyAsynchronously);
    const redis = new Redis({ port: node.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await redis.connect();
      assert.equal(node.service.getSync, undefined);
      await pipelineOfLargeAndSmallReplies(redis);
      assert.equal(await redis.get('mixed:1'), 'bbb');
    } finally {
      redis.disconnect();
      await stopNode(node);
    }
  });
});

function refusingCrossShard(service: KvService): KvService {
  return new Proxy(service, {
    get(target, property, receiver) {
      if (property !== 'write') return Reflect.get(target, property, receiver) as unknown;
      return (command: KvCommand) => {
        if (new Set(command.ops.map((op) => op.key[0])).size > 1) {
          return Promise.reject(new ImpulseError('IMPULSE_ERR_BATCH_CROSS_SHARD', 'the batch writes keys of 2 shards'));
        }
        return target.write(command);
      };
    },
  });
}

describe('RESP server on a service that refuses writes across shards', () => {
  it('writes a refused put group command by command, in order, and refuses only the cross-shard MSET', async () => {
    const node = await startNode({}, refusingCrossShard);
    const redis = new Redis({ port: node.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await redis.connect();
      const pipeline = redis.pipeline().set('a:1', '1').set('b:1', '1').set('a:1', '2').mset('a:2', 'x', 'b:2', 'y').mset('a:3', 'x', 'a:4', 'y').get('a:1');
      const results = (await pipeline.exec())!.map(([error, value]) => (error ? error.message : value));
      assert.deepEqual(results.slice(0, 3), ['OK', 'OK', 'OK']);
      assert.match(results[3] as string, /IMPULSE_ERR_BATCH_CROSS_SHARD/);
      assert.deepEqual(results.slice(4), ['OK', '2']);
      assert.deepEqual(await redis.mget('b:1', 'a:2', 'a:3'), ['1', null, 'x']);
    } finally {
      redis.disconnect();
      await stopNode(node);
    }
  });
});

/** A service that, like the leaderless one, writes one key per command and refuses more with IMPULSE_ERR_LEADERLESS_UNSUPPORTED. */
function oneKeyPerWrite(service: KvService): KvService {
  return new Proxy(service, {
    get(target, property, receiver) {
      if (property !== 'write') return Reflect.get(target, property, receiver) as unknown;
      return (command: KvCommand) =>
        command.ops.length > 1 ? Promise.reject(new ImpulseError('IMPULSE_ERR_LEADERLESS_UNSUPPORTED', 'leaderless mode writes one key at a time')) : target.write(command);
    },
  });
}

describe('RESP server on a service that writes one key per command (leaderless)', () => {
  it('answers pipelined SETs and the SETs of clients sent at once, and refuses only the MSET of two keys', async () => {
    const node = await startNode({}, oneKeyPerWrite);
    const clients = Array.from({ length: 6 }, () => new Redis({ port: node.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 }));
    try {
      await Promise.all(clients.map((client) => client.connect()));
      const results = (await clients[0]!.pipeline().set('l:1', 'a').set('l:2', 'b').mset('l:3', 'c', 'l:4', 'd').set('l:1', 'c').get('l:1').exec())!;
      const answers = results.map(([error, value]) => (error ? error.message : value));
      assert.deepEqual([answers[0], answers[1], answers[3], answers[4]], ['OK', 'OK', 'OK', 'c']);
      assert.match(answers[2] as string, /IMPULSE_ERR_LEADERLESS_UNSUPPORTED/);
      await Promise.all(clients.map(async (client, c) => assert.equal(await client.set(`l:client:${c}`, String(c)), 'OK')));
      assert.deepEqual(await Promise.all(clients.map((_, c) => clients[0]!.get(`l:client:${c}`))), clients.map((_, c) => String(c)));
    } finally {
      for (const client of clients) client.disconnect();
      await stopNode(node);
    }
  });
});

describe('RESP server limits', () => {
  it('disconnects a client that sends commands but never reads the replies, and counts it', async () => {
    const node = await startNode({ outputBytesHighWater: 256 * 1024, outputStallMs: 300, pipelineDepthMax: 64 });
    try {
      const setter = new Redis({ port: node.port, host: '127.0.0.1', lazyConnect: true });
      await setter.connect();
      await setter.set('fat', Buffer.alloc(60 * 1024, 1));
      setter.disconnect();
      const raw = new RawClient(node.port);
      raw.socket.pause(); // never read: the kernel buffers fill, then the server's output stalls
      const gets = Buffer.concat(Array.from({ length: 200 }, () => multibulk('GET', 'fat')));
      for (let i = 0; i < 20 && !raw.socket.destroyed; i++) raw.socket.write(gets);
      // A paused socket reports no close until its data is read: watch the server's figures instead.
      const deadline = Date.now() + 20_000;
      while (!/impulse_resp_disconnects_total\{reason="output_stalled"\} 1/.test(node.server.metrics.render())) {
        assert.ok(Date.now() < deadline, `not disconnected:\n${node.server.metrics.render()}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.match(node.server.metrics.render(), /impulse_resp_connections 0/);
      raw.socket.destroy();
    } finally {
      await stopNode(node);
    }
  });

  it('refuses connections over the limit with Redis\'s error', async () => {
    const node = await startNode({ connectionsMax: 1 });
    try {
      const first = new RawClient(node.port);
      first.send(multibulk('PING'));
      await first.until((text) => text === '+PONG\r\n');
      const second = new RawClient(node.port);
      await second.closed;
      assert.equal(await second.until(() => true), '-ERR max number of clients reached\r\n');
      first.socket.destroy();
      await first.closed;
    } finally {
      await stopNode(node);
    }
  });

  it('on close answers the commands already taken, then ends every connection', async () => {
    const node = await startNode();
    const raw = new RawClient(node.port);
    raw.send(Buffer.concat([multibulk('SET', 'x', '1'), multibulk('GET', 'x')]));
    await raw.until((text) => text === '+OK\r\n$1\r\n1\r\n');
    raw.send(multibulk('SET', 'y', '2'));
    await stopNode(node);
    await raw.closed;
    assert.ok((await raw.until(() => true)).startsWith('+OK\r\n$1\r\n1\r\n'));
  });
});

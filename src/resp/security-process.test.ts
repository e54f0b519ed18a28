/**
 * Tokens and TLS on the Redis protocol with a real `impulse serve` and the
 * real clients: redis-cli over TLS (`--tls --cacert`) authenticating with
 * `-a <token>` and with `--user <name> --pass <token>`, and ioredis over TLS;
 * NOAUTH, WRONGPASS and NOPERM as those clients show them; the RESP port's
 * handshake figures in /metrics.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ImpulseClient } from '../client/client.js';
import { type ServerProcess, startServerProcess } from '../../testkit/process/server-process.js';
import { redisCli, respPortOf } from '../../testkit/resp/redis-cli.js';
import { httpsText } from '../../testkit/security/https-text.js';
import { TestPki } from '../../testkit/security/pki.js';

const HAVE_REDIS_CLI = spawnSync('redis-cli', ['--version']).status === 0;
const WRITE = 'write-token-0123456789';
const READ = 'read-token-0123456789';
const ADMIN = 'admin-token-0123456789';

describe('RESP with tokens and TLS on a real impulse process (redis-cli, ioredis)', { skip: HAVE_REDIS_CLI ? false : 'redis-cli is not installed (Debian redis-tools)', timeout: 120_000 }, () => {
  let pki: TestPki;
  let dir = '';
  let server: ServerProcess;
  let port = 0;
  /** redis-cli over TLS, trusting the test CA, with `auth` arguments; stdout with the trailing newline removed. */
  const cli = async (auth: readonly string[], ...args: string[]): Promise<string> =>
    (await redisCli(port, ['--tls', '--cacert', pki.node(1).caFile, '--sni', 'localhost', '--no-auth-warning', ...auth, ...args])).trimEnd();

  before(async () => {
    pki = await TestPki.create(1);
    dir = await mkdtemp(join(tmpdir(), 'impulse-resp-sec-proc-'));
    await writeFile(join(dir, 'tokens'), `writer write ${WRITE}\nreader read ${READ}\nops admin ${ADMIN}\n`);
    const node = pki.node(1);
    server = await startServerProcess(['--engine', 'memory', '--data-dir', join(dir, 'data'), '--resp-port', '0', '--tls-cert', node.certFile, '--tls-key', node.keyFile, '--token-file', join(dir, 'tokens')]);
    port = respPortOf(server.output);
  });
  after(async () => {
    if (server !== undefined && server.child.exitCode === null) {
      server.kill('SIGTERM');
      await server.exited;
    }
    await pki?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('redis-cli over TLS: -a <token> and --user/--pass; NOAUTH, WRONGPASS, NOPERM as Redis words them', async () => {
    assert.equal(await cli([], 'PING'), 'NOAUTH Authentication required.');
    assert.equal(await cli([], 'AUTH', 'wrong-token-0123456789'), 'WRONGPASS invalid username-password pair or user is disabled.');
    // redis-cli reports a failed -a on stderr and sends the command anyway: it is refused.
    assert.equal(await cli(['-a', 'wrong-token-0123456789'], 'PING'), 'NOAUTH Authentication required.');
    assert.equal(await cli(['-a', WRITE], 'SET', 'cli:a', '1'), 'OK');
    assert.equal(await cli(['--user', 'reader', '--pass', READ], 'GET', 'cli:a'), '1');
    assert.equal(await cli(['--user', 'reader', '--pass', READ], 'SET', 'cli:a', '2'), "NOPERM this user has no permissions to run the 'set' command");
    assert.equal(await cli(['--user', 'writer', '--pass', READ], 'GET', 'cli:a'), 'NOAUTH Authentication required.', "a token under another token's name");
    assert.equal(await cli(['-a', ADMIN], 'MSET', 'cli:b', '2', 'cli:c', '3'), 'OK');
    assert.equal(await cli(['-a', READ], '--scan', '--pattern', 'cli:*'), 'cli:a\ncli:b\ncli:c');
    // A plain-TCP redis-cli on the TLS port gets nothing back.
    await assert.rejects(redisCli(port, ['-a', WRITE, '--no-auth-warning', 'PING']));
  });

  it('ioredis over TLS with a token, and the same keys over HTTPS', async () => {
    const node = pki.node(1);
    const redis = new Redis({ port, host: '127.0.0.1', password: WRITE, tls: { ca: node.ca, servername: 'localhost' }, maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
    const http = new ImpulseClient({ endpoint: server.url, ca: node.ca, token: READ });
    try {
      await redis.connect();
      assert.equal(await redis.set('io:a', 'over tls'), 'OK');
      assert.equal((await http.get('io:a'))?.toString(), 'over tls');
      const metrics = await httpsText(`${server.url}/metrics`, node.ca, READ);
      assert.match(metrics, /impulse_tls_handshakes_total\{listener="resp"\} [1-9]/);
      assert.match(metrics, /impulse_tls_handshakes_total\{listener="http"\} [1-9]/);
      assert.match(metrics, /impulse_resp_auth_refusals_total\{reason="noperm"\} [1-9]/);
    } finally {
      redis.disconnect();
      http.close();
    }
  });
});

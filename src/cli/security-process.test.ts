/**
 * Security as a user meets it, with real processes: protected mode, a TLS
 * node with tokens used from the CLI, a token file reloaded on SIGHUP, and a
 * three-member TLS cluster with mutual TLS that serves the CLI with a CA and
 * keeps out a member whose certificate names another node id.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { runCli } from '../../testkit/process/cli-run.js';
import { type ServerProcess, startServerProcess } from '../../testkit/process/server-process.js';
import { TestPki } from '../../testkit/security/pki.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const result = await runCli(args, { env });
  return { ...result, stdout: result.stdout.toString() };
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const READ = 'read-token-0123456789';
const WRITE = 'write-token-0123456789';
const APP = 'app-token-0123456789ab';

describe('security with real processes', { timeout: 180_000 }, () => {
  let pki: TestPki;
  let dir: string;
  before(async () => {
    pki = await TestPki.create(3);
    dir = await mkdtemp(join(tmpdir(), 'impulse-security-'));
  });
  after(async () => {
    await pki?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('protected mode: --host 0.0.0.0 without tokens or client certificates is refused in one sentence naming --insecure-listen', async () => {
    const refused = await run(['serve', '--host', '0.0.0.0', '--port', '0', '--engine', 'memory', '--data-dir', join(dir, 'protected')]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /refusing to listen on 0\.0\.0\.0.*--insecure-listen/);
    assert.equal(refused.stderr.trim().split('\n').length, 1);
    // TLS alone (no client certificates, no tokens) does not authenticate anyone: still refused.
    const tlsOnly = await run(['serve', '--host', '0.0.0.0', '--port', '0', '--engine', 'memory', '--data-dir', join(dir, 'protected'), '--tls-cert', pki.node(1).certFile, '--tls-key', pki.node(1).keyFile]);
    assert.equal(tlsOnly.code, 2, tlsOnly.stderr);
    const member = await run(['serve', '--port', '0', '--engine', 'lsm', '--data-dir', join(dir, 'protected-member'), '--node-id', '1', '--peer-host', '0.0.0.0', '--initial-cluster', '1=127.0.0.1:7999']);
    assert.equal(member.code, 2, member.stderr);
    assert.match(member.stderr, /refusing to accept peers on 0\.0\.0\.0 without mutual TLS.*--insecure-listen/);
  });

  describe('a TLS node with tokens, used from the CLI', () => {
    let server: ServerProcess;
    let tokenFile: string;
    let cli: (token: string | undefined, ...args: string[]) => Promise<Run>;
    before(async () => {
      tokenFile = join(dir, 'tokens');
      await writeFile(tokenFile, `reader read ${READ}\nwriter write ${WRITE}\napp write ${APP} app/\n`);
      const node = pki.node(1);
      server = await startServerProcess(['--engine', 'memory', '--data-dir', join(dir, 'tls-node'), '--tls-cert', node.certFile, '--tls-key', node.keyFile, '--token-file', tokenFile]);
      cli = (token, ...args) => run(['--endpoint', server.url, '--ca', node.caFile, ...args], token === undefined ? {} : { IMPULSE_TOKEN: token });
    });
    after(async () => {
      server?.kill('SIGTERM');
      await server?.exited;
    });

    it('serves https; 401 without a token, 403 for a read token writing or a prefix token outside its prefix', async () => {
      assert.match(server.url, /^https:\/\//);
      const anonymous = await cli(undefined, 'put', 'k', 'v');
      assert.equal(anonymous.code, 1);
      assert.match(anonymous.stderr, /requires a bearer token/);
      assert.equal((await cli(WRITE, 'put', 'k', 'v')).code, 0);
      const read = await cli(READ, 'get', 'k');
      assert.equal(read.code, 0, read.stderr);
      assert.equal(read.stdout, 'v');
      const readWrites = await cli(READ, 'put', 'k', 'w');
      assert.equal(readWrites.code, 1);
      assert.match(readWrites.stderr, /role read; this request needs write/);
      assert.equal((await cli(APP, 'put', 'app/x', '1')).code, 0);
      const outside = await cli(APP, 'get', 'k');
      assert.equal(outside.code, 1);
      assert.match(outside.stderr, /only use keys under its prefix/);
      const scanOutside = await cli(APP, 'scan');
      assert.equal(scanOutside.code, 1);
      assert.equal((await cli(APP, 'scan', '--prefix', 'app/')).stdout, 'app/x\t1\n');
      // Without the CA the CLI does not trust the server.
      const untrusting = await run(['--endpoint', server.url, 'get', 'k'], { IMPULSE_TOKEN: READ });
      assert.equal(untrusting.code, 5, untrusting.stderr);
      // The tokens never appear in the server's log.
      assert.ok(!server.output.some((line) => line.includes(READ) || line.includes(WRITE) || line.includes(APP)));
    });

    it('SIGHUP reloads the token file: a removed token stops working, a new one works', async () => {
      const fresh = 'fresh-token-0123456789';
      await writeFile(tokenFile, `writer write ${fresh}\n`);
      server.kill('SIGHUP');
      await waitFor('reload', async () => (await cli(fresh, 'get', 'k')).code === 0);
      const old = await cli(WRITE, 'get', 'k');
      assert.equal(old.code, 1);
      assert.match(old.stderr, /not valid on this server/);
      assert.ok(server.output.some((line) => line.includes('"what":"tokens"') && line.includes('"msg":"reloaded"')));
    });
  });

  it('a three-member cluster with mutual TLS serves the CLI with a CA; a member whose certificate names another id stays out until it has the right one', async () => {
    const certArgs = (id: number, name = `node-${id}`): string[] => ['--tls-cert', pki.get(name).certFile, '--tls-key', pki.get(name).keyFile, '--peer-tls-ca', pki.node(1).caFile];
    // Member 2 starts with a certificate from the cluster CA that names node 99.
    const cluster = await ProcessCluster.start(3, {
      memberArgs: (id) => certArgs(id, id === 2 ? 'misnamed-2' : `node-${id}`),
      https: true,
      clientOptions: { ca: pki.node(1).ca },
    });
    try {
      const leader = await cluster.waitForLeader(30_000, [1, 3]);
      const put = await run(['--endpoint', cluster.url(leader), '--ca', pki.node(1).caFile, 'put', 'greeting', 'hello']);
      assert.equal(put.code, 0, put.stderr);
      const other = leader === 1 ? 3 : 1;
      const got = await run(['--endpoint', cluster.url(other), '--ca', pki.node(1).caFile, 'get', 'greeting']);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(got.stdout, 'hello');
      await waitFor('a refusal in a member log', () => /certificate-mismatch/.test(cluster.output(1) + cluster.output(3)));
      const view = await cluster.client(leader).cluster();
      const misnamed = view.members.find((candidate) => candidate.id === 2);
      assert.ok(misnamed !== undefined);
      assert.equal(misnamed.matchIndex ?? 0, 0, `member 2 never received entries: ${JSON.stringify(misnamed)}`);
      // With its own certificate, member 2 joins and catches up.
      await cluster.kill(2);
      await cluster.start(2, certArgs(2));
      await waitFor('member 2 caught up', async () => {
        const value = await cluster.client(2).get('greeting', { consistency: 'serializable' }).catch(() => undefined);
        return value?.toString() === 'hello';
      });
    } finally {
      await cluster.close();
    }
  });
});

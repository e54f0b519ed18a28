/**
 * The CLI's conventions as a user meets them, against a real server: exit
 * statuses, one-sentence usage errors, binary keys round-tripping through
 * what scan prints, -o json, scan's limit and --all, batch, health, empty
 * stdin, shell completion.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../testkit/process/cli-run.js';
import { type ServerProcess, startServerProcess } from '../../testkit/process/server-process.js';
import { parseBatchText } from './client-commands.js';
import { bytesArgument, show } from './output.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function run(args: string[], input?: string | Buffer): Promise<Run> {
  const result = await runCli(args, input === undefined ? {} : { input });
  return { ...result, stdout: result.stdout.toString() };
}

describe('impulse CLI conventions', () => {
  let dir = '';
  let server: ServerProcess;
  let endpoint: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'impulse-cli-conv-'));
    server = await startServerProcess(['--engine', 'memory', '--data-dir', dir]);
    endpoint = ['--endpoint', server.url];
  });
  after(async () => {
    server.kill('SIGTERM');
    await server.exited;
    await rm(dir, { recursive: true, force: true });
  });

  it('answers usage errors with one sentence and exit 2', async () => {
    for (const args of [['--bogus'], ['get'], ['put', 'a', 'b', 'c'], ['scan', '--limit', '0'], ['-o', 'yaml', ...endpoint, 'get', 'a'], ['completion', 'fish'], ['get', 'base64:***']]) {
      const result = await run(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /^impulse: [^\n]+\n$/, args.join(' '));
    }
  });

  it('confirms writes with OK, and prints JSON with -o json', async () => {
    const put = await run([...endpoint, 'put', 'conv/a', 'one']);
    assert.deepEqual([put.code, put.stdout], [0, 'OK\n']);
    const json = await run([...endpoint, '-o', 'json', 'put', 'conv/b', 'two']);
    const written = JSON.parse(json.stdout);
    assert.equal(written.ok, true);
    assert.ok(written.revision > 0);
    const got = JSON.parse((await run([...endpoint, 'get', 'conv/b', '-o', 'json'])).stdout);
    assert.deepEqual(got, { key: 'conv/b', value: 'two', revision: written.revision });
    const del = await run([...endpoint, 'del', 'conv/b']);
    assert.deepEqual([del.code, del.stdout], [0, 'OK\n']);
    assert.equal((await run([...endpoint, 'get', 'conv/b'])).code, 4);
  });

  it('takes back the binary keys scan prints, tabs and a literal "base64:" prefix included', async () => {
    const keys = [Buffer.from([0xff, 0x00, 0x01]), Buffer.from('tab\there'), Buffer.from('base64:not-really')];
    const written = keys.map((key, index) => `put ${show(key)} v${index}`).join('\n');
    assert.equal((await run([...endpoint, 'batch'], written)).code, 0);
    const lines = (await run([...endpoint, 'scan', '-o', 'json'])).stdout.trim().split('\n').map((line) => JSON.parse(line) as { key: string; value: string });
    for (const [index, key] of keys.entries()) {
      const printed = lines.find((line) => bytesArgument(line.key).equals(key));
      assert.ok(printed, `scan shows ${key.toString('hex')}`);
      const got = await run([...endpoint, 'get', printed.key]);
      assert.deepEqual([got.code, got.stdout], [0, `v${index}`]);
    }
    const tab = show(keys[1]!);
    assert.equal((await run([...endpoint, 'del', tab])).code, 0);
    assert.equal((await run([...endpoint, 'get', tab])).code, 4);
  });

  it('says when scan stopped at its limit, and --all pages through everything', async () => {
    const lines = Array.from({ length: 1005 }, (_, i) => `put page/${String(i).padStart(4, '0')} value ${i}`).join('\n');
    const batch = await run([...endpoint, 'batch'], lines);
    assert.deepEqual([batch.code, batch.stdout], [0, 'OK\n'], batch.stderr);
    const limited = await run([...endpoint, 'scan', '--prefix', 'page/', '--limit', '3']);
    assert.equal(limited.stdout, 'page/0000\tvalue 0\npage/0001\tvalue 1\npage/0002\tvalue 2\n');
    assert.match(limited.stderr, /stopped after 3 entries \(--limit 3\); more follow/);
    const exact = await run([...endpoint, 'scan', '--prefix', 'page/', '--limit', '1005']);
    assert.equal(exact.stdout.trim().split('\n').length, 1005);
    assert.equal(exact.stderr, '');
    const all = await run([...endpoint, 'scan', '--prefix', 'page/', '--all']);
    assert.equal(all.stdout.trim().split('\n').length, 1005);
    assert.equal(all.stderr, '');
  });

  it('applies a batch file all or none', async () => {
    const file = join(dir, 'ops.json');
    await writeFile(file, JSON.stringify({ ops: [{ op: 'put', key: 'b/1', value: 'x' }, { op: 'put', key: 'conv/a', value: 'y', ifAbsent: true }] }));
    const refused = await run([...endpoint, 'batch', file]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.equal((await run([...endpoint, 'get', 'b/1'])).code, 4);
    assert.equal((await run([...endpoint, 'batch'], 'put b/1 x\nbogus line\n')).code, 2);
    assert.throws(() => parseBatchText('del a extra'), /del takes only a key/);
    // The document is read by the server's own parser: what the server refuses, the CLI refuses before sending.
    assert.throws(() => parseBatchText('{"ops":[{"op":"put","key":"a","value":"1","bogus":1}]}'), /unexpected field "bogus"/);
    assert.throws(() => parseBatchText('{"encoding":"base64","ops":[{"op":"delete","key":"A==="}]}'), /not valid base64/);
    assert.deepEqual(parseBatchText('# comment\n\nput a b c\ndel base64:AA==\n'), [
      { op: 'put', key: Buffer.from('a'), value: Buffer.from('b c') },
      { op: 'delete', key: Buffer.from([0]) },
    ]);
  });

  it('refuses an empty stdin value unless --allow-empty', async () => {
    const refused = await run([...endpoint, 'put', 'conv/empty'], '');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--allow-empty/);
    assert.equal((await run([...endpoint, 'get', 'conv/empty'])).code, 4);
    assert.equal((await run([...endpoint, 'put', '--allow-empty', 'conv/empty'], '')).code, 0);
    const got = await run([...endpoint, 'get', 'conv/empty']);
    assert.deepEqual([got.code, got.stdout], [0, '']);
  });

  it('reports health: ok with exit 0, JSON with -o json', async () => {
    const text = await run([...endpoint, 'health']);
    assert.deepEqual([text.code, text.stdout], [0, 'ok\n']);
    assert.equal(JSON.parse((await run([...endpoint, '-o', 'json', 'health'])).stdout).status, 'ok');
  });

  it('prints a bash completion script that bash accepts and that knows the commands and flags', async () => {
    const script = await run(['completion', 'bash']);
    assert.equal(script.code, 0);
    assert.match(script.stdout, /"scan"\) candidates="[^"]*--prefix/);
    assert.match(script.stdout, /"member" *\) *candidates="list add promote remove/);
    const syntax = spawnSync('bash', ['-n'], { input: script.stdout });
    assert.equal(syntax.status, 0, syntax.stderr?.toString());
  });
});

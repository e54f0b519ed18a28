/**
 * The dashboard's routes over HTTP on a real server: the built page and its
 * files (types, ETag and 304, gzip, HEAD, the page's CSP), nothing outside
 * the manifest, a clear 404 when the dashboard was never built, 405 with
 * Allow; the chaos listing and files (runs in subdirectories and the
 * directory itself, a broken summary listed with its problem, names that try
 * to leave the directory refused); /status's key-value request summary.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { openLocalKvService } from '../service/open-local.js';
import { DEFAULT_LIMITS } from '../storage/engine.js';
import { DASHBOARD_DIR } from './dashboard-assets.js';
import { ImpulseServer, type ServerOptions } from './server.js';

interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function get(base: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(base + path, init);
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

function errorCode(answer: Answer): string {
  return (JSON.parse(answer.body.toString('utf8')) as { error: { code: string } }).error.code;
}

async function startServer(options: Partial<ServerOptions>): Promise<{ base: string; server: ImpulseServer; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'impulse-dashboard-'));
  const service = await openLocalKvService({ engine: 'memory', dataDir: join(dir, 'memory'), sync: 'fsync', limits: DEFAULT_LIMITS });
  const server = new ImpulseServer({ service, logger: pino({ level: 'silent' }), version: 'test', ...options });
  return { base: `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`, server, dir };
}

describe('dashboard routes', () => {
  let base = '';
  let server: ImpulseServer;
  let dir = '';
  let chaosDir = '';
  before(async () => {
    chaosDir = await mkdtemp(join(tmpdir(), 'impulse-chaos-results-'));
    ({ base, server, dir } = await startServer({ chaosResultsDir: chaosDir }));
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
    await rm(chaosDir, { recursive: true, force: true });
  });

  it('serves the page with its policy, and its files with their types', async () => {
    for (const path of ['/ui', '/ui/', '/ui/index.html']) {
      const page = await get(base, path);
      assert.equal(page.status, 200, path);
      assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.match(page.body.toString('utf8'), /<script type="module" src="\/ui\/app\/main.js"><\/script>/);
      assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self';/);
    }
    const main = await get(base, '/ui/app/main.js');
    assert.equal(main.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.match(main.body.toString('utf8'), /from '\/ui\/vendor\/preact\.js'/, 'bare imports point at the vendored copies');
    assert.equal((await get(base, '/ui/vendor/uplot.css')).headers.get('content-type'), 'text/css; charset=utf-8');
    assert.equal((await get(base, '/ui/vendor/uplot.js')).status, 200);
  });

  it('answers 304 to a matching If-None-Match, gzip to a client that takes it, and the length to HEAD', async () => {
    const plain = await get(base, '/ui/vendor/uplot.js');
    const etag = plain.headers.get('etag')!;
    assert.match(etag, /^"[\w-]{22}"$/);
    assert.equal((await get(base, '/ui/vendor/uplot.js', { headers: { 'if-none-match': etag } })).status, 304);
    const response = await fetch(`${base}/ui/vendor/uplot.js`, { headers: { 'accept-encoding': 'gzip' }, decompress: false } as RequestInit);
    const zipped = Buffer.from(await response.arrayBuffer());
    // fetch may decompress on its own; either way the bytes are the file's.
    const unzipped = response.headers.get('content-encoding') === 'gzip' && zipped[0] === 0x1f ? gunzipSync(zipped) : zipped;
    assert.deepEqual(unzipped, plain.body);
    const head = await fetch(`${base}/ui/index.html`, { method: 'HEAD', headers: { 'accept-encoding': 'identity' } });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), (await get(base, '/ui/index.html', { headers: { 'accept-encoding': 'identity' } })).body.length);
  });

  it('serves only the files of the manifest', async () => {
    for (const path of ['/ui/nothing.js', '/ui/../package.json', '/ui/%2e%2e/%2e%2e/package.json', '/ui/manifest.json', '/ui/app/', '/ui//etc/passwd']) {
      const answer = await get(base, path);
      assert.equal(answer.status, 404, path);
      assert.equal(errorCode(answer), 'IMPULSE_ERR_ROUTE_NOT_FOUND', path);
    }
  });

  it('refuses other methods with 405 and Allow', async () => {
    const post = await get(base, '/ui', { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const chaos = await get(base, '/ui/api/chaos', { method: 'DELETE' });
    assert.equal(chaos.status, 405);
    assert.equal(chaos.headers.get('allow'), 'GET');
  });

  it('lists chaos runs, newest name first, with the broken ones and the directory itself', async () => {
    assert.deepEqual(JSON.parse((await get(base, '/ui/api/chaos')).body.toString('utf8')), { dir: chaosDir, runs: [], truncated: false });
    const summary = (seed: number, valid: boolean): string =>
      JSON.stringify({ options: { nodes: 3, engine: 'lsm', durationS: 30, nemesis: ['kill', 'partition'], seed, workload: 'register' }, valid, checks: [{ name: 'linearizable', ok: valid, summary: '', details: [] }, { name: 'converged', ok: true, summary: '', details: [] }], leaderChanges: [{}, {}], recoveryMs: 812.5 });
    for (const [run, text] of [['2026-11-28-a', summary(7, true)], ['2026-11-29-b', summary(8, false)], ['broken', '{"valid": tr']] as const) {
      await mkdir(join(chaosDir, run));
      await writeFile(join(chaosDir, run, 'summary.json'), text);
    }
    await writeFile(join(chaosDir, '2026-11-29-b', 'report.html'), '<h1>report</h1>');
    await mkdir(join(chaosDir, 'not-a-run'));
    await writeFile(join(chaosDir, 'summary.json'), summary(9, true));
    const listing = JSON.parse((await get(base, '/ui/api/chaos')).body.toString('utf8'));
    assert.deepEqual(listing.runs.map((run: { name: string }) => run.name), ['@', 'broken', '2026-11-29-b', '2026-11-28-a']);
    const [root, broken, failed] = listing.runs;
    assert.equal(root.seed, 9);
    assert.equal(broken.problem, 'summary.json is not valid JSON');
    assert.deepEqual(
      { valid: failed.valid, seed: failed.seed, workload: failed.workload, nemesis: failed.nemesis, nodes: failed.nodes, checks: failed.checks, leaderChanges: failed.leaderChanges, recoveryMs: failed.recoveryMs, files: failed.files },
      { valid: false, seed: 8, workload: 'register', nemesis: ['kill', 'partition'], nodes: 3, checks: [{ name: 'linearizable', ok: false }, { name: 'converged', ok: true }], leaderChanges: 2, recoveryMs: 812.5, files: ['report.html', 'summary.json'] },
    );
  });

  it('serves a chaos report sandboxed, and nothing outside the runs', async () => {
    const report = await get(base, '/ui/chaos/2026-11-29-b/report.html');
    assert.equal(report.status, 200);
    assert.equal(report.body.toString('utf8'), '<h1>report</h1>');
    assert.match(report.headers.get('content-security-policy') ?? '', /^sandbox;/);
    assert.equal((await get(base, '/ui/chaos/@/summary.json')).status, 200);
    for (const path of ['/ui/chaos/2026-11-28-a/report.html', '/ui/chaos/2026-11-28-a/secret.txt', '/ui/chaos/../summary.json', '/ui/chaos/%2e%2e/summary.json', '/ui/chaos/.hidden/summary.json']) {
      assert.equal((await get(base, path)).status, 404, path);
    }
  });

  it('reports in /status the key-value requests answered, and only those', async () => {
    const before = JSON.parse((await get(base, '/status')).body.toString('utf8')).requests;
    await fetch(`${base}/kv/a`, { method: 'PUT', body: 'x' });
    await get(base, '/kv/a');
    await get(base, '/kv?prefix=a');
    await get(base, '/ui/app/main.js');
    await get(base, '/health');
    const after = JSON.parse((await get(base, '/status')).body.toString('utf8')).requests;
    assert.equal(after.count - before.count, 3);
    assert.equal(after.latencyCounts.reduce((sum: number, count: number) => sum + count, 0), after.count);
    assert.equal(after.latencyCounts.length, after.latencyBoundsSeconds.length + 1);
    assert.ok(after.sampledAtUptimeMs > before.sampledAtUptimeMs);
  });
});

describe('dashboard routes without a built dashboard or chaos directory', () => {
  it('say what is missing', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'impulse-no-dashboard-'));
    const { base, server, dir } = await startServer({ dashboardDir: empty });
    try {
      const page = await get(base, '/ui');
      assert.equal(page.status, 404);
      assert.match(JSON.parse(page.body.toString('utf8')).error.message, /the dashboard is not built .* run npm run build/);
      assert.deepEqual(JSON.parse((await get(base, '/ui/api/chaos')).body.toString('utf8')), { dir: null, runs: [], truncated: false });
      assert.match(JSON.parse((await get(base, '/ui/chaos/run/report.html')).body.toString('utf8')).error.message, /without --chaos-results/);
      // Built later: the next request finds it.
      await writeFile(join(empty, 'manifest.json'), '["index.html"]');
      await writeFile(join(empty, 'index.html'), '<p>built</p>');
      assert.equal((await get(base, '/ui')).body.toString('utf8'), '<p>built</p>');
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('the package has a built dashboard (npm run build made it)', async () => {
    const { readFile } = await import('node:fs/promises');
    const manifest = JSON.parse(await readFile(join(DASHBOARD_DIR, 'manifest.json'), 'utf8')) as string[];
    for (const file of ['index.html', 'app/main.js', 'vendor/preact.js', 'vendor/preact-hooks.js', 'vendor/htm.js', 'vendor/uplot.js', 'vendor/uplot.css']) assert.ok(manifest.includes(file), file);
  });
});

describe('dashboard routes with tokens', () => {
  it('serve the page to anyone, and the chaos results and member relay only with a token', async () => {
    const { Authorizer, TokenTable } = await import('../security/auth.js');
    const token = 'reader-token-0123456789';
    const chaosDir = await mkdtemp(join(tmpdir(), 'impulse-chaos-auth-'));
    const { base, server, dir } = await startServer({ chaosResultsDir: chaosDir, auth: new Authorizer(TokenTable.parse(`reader read ${token}\n`, 'tokens'), false) });
    try {
      assert.equal((await get(base, '/ui')).status, 200, 'the page holds no data');
      const chaos = await get(base, '/ui/api/chaos');
      assert.deepEqual([chaos.status, errorCode(chaos)], [401, 'IMPULSE_ERR_AUTH_REQUIRED']);
      assert.equal((await get(base, '/ui/api/chaos', { headers: { authorization: `Bearer ${token}` } })).status, 200);
      assert.equal((await get(base, '/ui/chaos/run/report.html')).status, 401);
      assert.equal((await get(base, '/cluster/nodes/2/status')).status, 401, 'a relay reads another member: a token first');
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
      await rm(chaosDir, { recursive: true, force: true });
    }
  });
});

/**
 * The dashboard in a real browser: headless Chromium (Debian's `chromium`,
 * which .ci/run installs) driven by playwright-core, against a cluster of
 * three real `impulse serve` processes (testkit/process/cluster-process.ts).
 * The page loads without console errors, shows three members and one leader
 * (and the shard map: the cluster is started with three shards),
 * charts the load one member takes, writes a key the CLI then reads, deletes
 * it after a confirmation, and shows a killed member as down within seconds
 * while the rest stays usable. A single node gets a one-row page.
 *
 * IMPULSE_CHROMIUM names another browser binary; IMPULSE_DASHBOARD_SCREENSHOT=path
 * saves the page under load (docs/dashboard.png is made that way).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { type Browser, type Page, chromium } from 'playwright-core';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';
import { CLI_PATH, type ServerProcess, startServerProcess } from '../../testkit/process/server-process.js';
import { EXIT } from '../cli/exit-codes.js';

const CHROMIUM = process.env['IMPULSE_CHROMIUM'] ?? '/usr/bin/chromium';
const SKIP = existsSync(CHROMIUM) ? false : `no browser at ${CHROMIUM}: install Debian's chromium (.ci/run does), or set IMPULSE_CHROMIUM`;
/** Generous: the machine running the suite may be loaded. */
const UI_TIMEOUT_MS = 20_000;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI_PATH, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function openPage(browser: Browser, url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  await page.goto(url);
  return { page, problems };
}

/** The members table as [id, state, role] rows. */
function memberRows(page: Page): Promise<string[][]> {
  return page.locator('tr[data-member]').evaluateAll((rows) => rows.map((row) => ['data-member', 'data-state', 'data-role'].map((name) => row.getAttribute(name) ?? '')));
}

async function waitForRows(page: Page, test: (rows: string[][]) => boolean, what: string): Promise<string[][]> {
  const deadline = Date.now() + UI_TIMEOUT_MS;
  for (;;) {
    const rows = await memberRows(page);
    if (test(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`the page never showed ${what}; it shows ${JSON.stringify(rows)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Polls the text of `selector` (no page-side function: the page's CSP forbids eval). */
async function waitForText(page: Page, selector: string, test: (text: string) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + UI_TIMEOUT_MS;
  let text = '';
  while (!test((text = (await page.locator(selector).textContent()) ?? ''))) {
    if (Date.now() > deadline) throw new Error(`the page never showed ${what}; ${selector} shows ${JSON.stringify(text)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the dashboard in headless Chromium', { skip: SKIP }, () => {
  let cluster: ProcessCluster;
  let browser: Browser;
  let page: Page;
  let problems: string[];

  before(async () => {
    // Sharded (docs/sharding.md): three shards, so the page shows a shard map too.
    cluster = await ProcessCluster.start(3, { serveArgs: ['--split-keys', 'load/3,ui/'] });
    await cluster.waitForLeader();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    ({ page, problems } = await openPage(browser, `${cluster.url(1)}/ui`));
  });
  after(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it('loads with no console errors and shows three members, one of them the leader', async () => {
    const rows = await waitForRows(page, (rows) => rows.length === 3 && rows.every(([, state]) => state === 'up') && rows.filter(([, , role]) => role === 'leader').length === 1, 'three members up and one leader');
    const leader = await cluster.waitForLeader();
    assert.deepEqual(rows.filter(([, , role]) => role === 'leader').map(([id]) => Number(id)), [leader]);
    assert.match(await page.getByTestId('leader').innerText(), new RegExp(`^node ${leader}$`));
    assert.equal(await page.title(), 'impulse · node 1');
    const shards = page.getByTestId('shards').locator('tbody tr');
    await shards.first().waitFor({ timeout: UI_TIMEOUT_MS });
    const ranges = await shards.evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].slice(1, 3).map((cell) => cell.textContent)));
    assert.deepEqual(ranges, [['(first key)', 'load/3'], ['load/3', 'ui/'], ['ui/', '(last key)']]);
    await waitForText(page, '[data-testid="shards"] tbody', (text) => !text.includes('none'), 'a leader for every shard');
    await page.waitForTimeout(2000); // a few polls, each touching every member
    assert.deepEqual(problems, []);
  });

  it('charts the requests each member answers, from its own figures', async () => {
    let writing = true;
    // Writers at every member: each member's own figures count the requests it answered (forwarded or not).
    const load = Promise.all(
      Array.from({ length: 6 }, async (_, worker) => {
        const client = cluster.client((worker % 3) + 1);
        for (let i = 0; writing; i++) await client.put(`load/${worker}/${i % 50}`, `value ${i}`);
      }),
    );
    try {
      for (const id of [1, 2, 3]) {
        await waitForText(page, `[data-rate-member="${id}"]`, (text) => Number(text) > 0, `a request rate for node ${id}`);
        await waitForText(page, `[data-p99-member="${id}"]`, (text) => / ms$/.test(text), `a p99 for node ${id}`);
      }
      const screenshot = process.env['IMPULSE_DASHBOARD_SCREENSHOT'];
      if (screenshot !== undefined) {
        await page.waitForTimeout(15_000);
        await page.screenshot({ path: screenshot, fullPage: true });
      }
    } finally {
      writing = false;
      await load;
    }
    assert.deepEqual(problems, []);
  });

  it('writes a key that the CLI reads, shows it, and deletes it only after a confirmation', async () => {
    await page.getByTestId('put-key').fill('ui/greeting');
    await page.getByTestId('put-value').fill('hello from the browser');
    await page.getByTestId('put').click();
    await page.getByTestId('confirm').waitFor();
    assert.equal((await cli('--endpoint', cluster.url(2), 'get', 'ui/greeting')).code, EXIT.notFound, 'nothing is written before the confirmation');
    await page.getByTestId('confirm-yes').click();
    await page.getByTestId('key-message').filter({ hasText: /^wrote ui\/greeting at revision \d+$/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    const read = await cli('--endpoint', cluster.url(2), 'get', 'ui/greeting');
    assert.deepEqual([read.code, read.stdout], [EXIT.ok, 'hello from the browser']);

    await page.getByTestId('prefix').fill('ui/');
    await page.getByTestId('search').click();
    await page.getByTestId('key-list').getByText('ui/greeting').click();
    await page.getByTestId('value').filter({ hasText: 'hello from the browser' }).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.getByRole('button', { name: 'hex' }).click();
    assert.match(await page.getByTestId('value').innerText(), /^00000000 {2}68 65 6c 6c 6f 20/);

    await page.getByTestId('delete').click();
    await page.getByTestId('confirm-no').click();
    assert.equal((await cli('--endpoint', cluster.url(3), 'get', 'ui/greeting')).code, EXIT.ok, 'cancelled: still there');
    await page.getByTestId('delete').click();
    await page.getByTestId('confirm-yes').click();
    await page.getByTestId('key-message').filter({ hasText: /^deleted ui\/greeting/ }).waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal((await cli('--endpoint', cluster.url(3), 'get', 'ui/greeting')).code, EXIT.notFound);
    await page.getByTestId('no-keys').waitFor({ timeout: UI_TIMEOUT_MS });
    assert.deepEqual(problems, []);
  });

  it('shows a hung member (SIGSTOP) as down after the relay gives up, and up again once it runs', async () => {
    const leader = await cluster.waitForLeader();
    const hung = [2, 3].find((id) => id !== leader)!; // a follower other than the page's node
    cluster.signal(hung, 'SIGSTOP');
    try {
      const stoppedAt = Date.now();
      await waitForRows(page, (rows) => rows.some(([id, state]) => Number(id) === hung && state === 'down'), `node ${hung} down`);
      const secondsToDown = (Date.now() - stoppedAt) / 1000;
      assert.ok(secondsToDown < 8, `node ${hung} shown down after ${secondsToDown} s (the relay waits 1.5 s)`);
      assert.match(await page.locator(`tr[data-member="${hung}"] .problem`).innerText(), /no answer within 1500 ms/);
      assert.equal((await memberRows(page)).filter(([, state]) => state === 'up').length, 2, 'the others stay up: the poll is not stalled');
    } finally {
      cluster.signal(hung, 'SIGCONT');
    }
    await waitForRows(page, (rows) => rows.every(([, state]) => state === 'up'), 'every member up again');
  });

  it('shows a killed member as down within a few seconds, and the rest with one leader', async () => {
    const leader = await cluster.waitForLeader();
    const victim = leader !== 1 ? leader : 2; // never the page's own node
    await cluster.kill(victim);
    const killedAt = Date.now();
    await waitForRows(page, (rows) => rows.some(([id, state]) => Number(id) === victim && state === 'down'), `node ${victim} down`);
    const secondsToDown = (Date.now() - killedAt) / 1000;
    assert.ok(secondsToDown < 5, `node ${victim} shown down after ${secondsToDown} s`);
    const rows = await waitForRows(page, (rows) => rows.filter(([, state]) => state === 'up').length === 2 && rows.filter(([, , role]) => role === 'leader').length === 1, 'two members up and a leader');
    assert.ok(!rows.some(([id, , role]) => Number(id) === victim && role === 'leader'));
    const problem = await page.locator(`tr[data-member="${victim}"] .problem`).innerText();
    assert.match(problem, /IMPULSE_ERR_MEMBER_UNREACHABLE/);
    // The browser itself reports the relay's 502s; nothing else may appear.
    assert.deepEqual(problems.filter((line) => !/status of 502/.test(line)), []);
  });

  it("says so when the page's own node goes, keeps the last figures, and recovers when it is back", async () => {
    await cluster.kill(1);
    const banner = page.getByTestId('page-node-down');
    await banner.waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await banner.innerText(), /does not answer/);
    assert.ok((await banner.locator('a').count()) >= 1, 'links to the other members');
    const rows = await memberRows(page);
    assert.equal(rows.length, 3, 'the members are still listed');
    assert.ok(rows.every(([, state]) => state === 'unknown'));
    await cluster.start(1);
    await banner.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    await waitForRows(page, (rows) => rows.some(([id, state]) => id === '1' && state === 'up'), 'node 1 up again');
    assert.deepEqual(problems.filter((line) => !/status of 502|ERR_CONNECTION_REFUSED/.test(line)), []);
  });
});

/** Closes the browser, kills the node and removes its directory (whatever of them was started). */
async function stopSingleNode(browser: Browser | undefined, server: ServerProcess | undefined, dir: string): Promise<void> {
  await browser?.close();
  server?.kill('SIGKILL');
  await server?.exited;
  await rm(dir, { recursive: true, force: true });
}

describe('the dashboard of a single node in headless Chromium', { skip: SKIP }, () => {
  let dir = '';
  let server: ServerProcess;
  let browser: Browser;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'impulse-ui-single-'));
    // One chaos run, as `impulse chaos --out` writes it (testkit/chaos on the chaos branch): a failed check.
    const run = join(dir, 'chaos', '2026-11-29-kill-seed-7');
    await mkdir(run, { recursive: true });
    const checks = [{ name: 'linearizable', ok: false, summary: '1 violation', details: ['k1'] }, { name: 'converged', ok: true, summary: 'equal digests', details: [] }];
    await writeFile(join(run, 'summary.json'), JSON.stringify({ options: { nodes: 3, engine: 'lsm', durationS: 20, nemesis: ['kill'], seed: 7, workload: 'register' }, valid: false, checks, leaderChanges: [{}, {}, {}], recoveryMs: 640 }));
    await writeFile(join(run, 'report.html'), '<h1>chaos report</h1>');
    server = await startServerProcess(['--engine', 'btree', '--data-dir', join(dir, 'data'), '--chaos-results', join(dir, 'chaos')]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  after(() => stopSingleNode(browser, server, dir));

  it('shows one node, its B+tree figures, its chaos runs, and no console errors', async () => {
    const { page, problems } = await openPage(browser, `${server.url}/ui`);
    await waitForRows(page, (rows) => rows.length === 1 && rows[0]![1] === 'up', 'the node up');
    assert.equal(await page.getByTestId('leader').innerText(), 'single node (no replication)');
    await page.getByTestId('engine').getByText('tree depth').waitFor({ timeout: UI_TIMEOUT_MS });
    const run = page.getByTestId('chaos').locator('tbody tr');
    await run.waitFor({ timeout: UI_TIMEOUT_MS });
    const cells = await run.locator('td').allInnerTexts();
    assert.deepEqual(cells.slice(0, 9), ['2026-11-29-kill-seed-7', 'INVALID', 'register', 'kill', '7', '3', '1 / 2', '3', '640 ms']);
    const report = await fetch(server.url + (await run.getByRole('link', { name: 'report.html' }).getAttribute('href'))!);
    assert.equal(await report.text(), '<h1>chaos report</h1>');
    assert.deepEqual(problems, []);
  });
});

describe('the dashboard of a node with a token file in headless Chromium', { skip: SKIP }, () => {
  const READ_TOKEN = 'ui-read-token-0123456789';
  let dir = '';
  let server: ServerProcess;
  let browser: Browser;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'impulse-ui-token-'));
    await writeFile(join(dir, 'tokens'), `viewer read ${READ_TOKEN}\n`);
    server = await startServerProcess(['--engine', 'memory', '--data-dir', join(dir, 'data'), '--token-file', join(dir, 'tokens')]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  after(() => stopSingleNode(browser, server, dir));

  it('asks for a token on 401, says when one is refused, then sends it as a bearer header (never in a URL) for the rest of the tab', async () => {
    const { page, problems } = await openPage(browser, `${server.url}/ui`);
    const requests: { url: string; authorization: string | undefined }[] = [];
    page.on('request', (request) => requests.push({ url: request.url(), authorization: request.headers()['authorization'] }));
    const login = page.getByTestId('login');
    await login.waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await page.getByTestId('login-reason').innerText(), /token file/);
    await login.getByLabel('token').fill('not-the-token-0123456789');
    await login.getByRole('button', { name: 'Use token' }).click();
    await waitForText(page, '[data-testid="login-reason"]', (text) => /was refused/.test(text), 'the refusal');
    await login.getByLabel('token').fill(READ_TOKEN);
    await login.getByRole('button', { name: 'Use token' }).click();
    await waitForRows(page, (rows) => rows.length === 1 && rows[0]![1] === 'up', 'the node up');
    await login.waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
    // The tab keeps the token across a reload; nothing put it in a URL.
    await page.reload();
    await waitForRows(page, (rows) => rows.length === 1 && rows[0]![1] === 'up', 'the node up after a reload');
    assert.equal(await page.getByTestId('login').count(), 0);
    assert.ok(requests.some((request) => request.url.endsWith('/status') && request.authorization === `Bearer ${READ_TOKEN}`), 'calls carry the bearer token');
    assert.deepEqual(requests.filter((request) => request.url.includes(READ_TOKEN) || page.url().includes(READ_TOKEN)), []);
    // Another tab (a fresh browser context) has no token: it asks again.
    const other = await openPage(browser, `${server.url}/ui`);
    await other.page.getByTestId('login').waitFor({ timeout: UI_TIMEOUT_MS });
    // "forget token" drops it from this tab.
    await page.getByTestId('forget-token').click();
    await page.getByTestId('login').waitFor({ timeout: UI_TIMEOUT_MS });
    // The browser reports the 401 answers themselves; nothing else may appear.
    assert.deepEqual([...problems, ...other.problems].filter((line) => !/status of 401/.test(line)), []);
  });
});

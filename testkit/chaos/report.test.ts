/**
 * The report renders in headless Chromium (Debian's `chromium`, driven by
 * playwright-core) and shows its charts: the verdict, one point per operation,
 * the fault windows, the leader changes and the throughput bars. Skipped,
 * with the reason, where Chromium is not installed (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import type { HistoryOp } from './history.js';
import { renderReport } from './report.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

function syntheticRun(): Parameters<typeof renderReport>[0] {
  const ops: HistoryOp[] = [];
  for (let i = 0; i < 300; i++) {
    const call = i * 0.05;
    const status = i % 50 === 7 ? 'unknown' : i % 20 === 3 ? 'fail' : 'ok';
    ops.push({ index: i, process: 1 + (i % 4), op: i % 2 === 0 ? 'put' : 'get', key: `r/${i % 3}`, value: i % 2 === 0 ? `v${i}` : null, out: null, call, ret: status === 'unknown' ? null : call + 0.002 + (i % 10) * 0.003, status, node: 1 + (i % 3), ...(status !== 'ok' ? { error: 'IMPULSE_ERR_UNAVAILABLE' } : {}) });
  }
  return {
    title: 'impulse chaos — report test',
    options: { seed: 1, nodes: 3 },
    valid: false,
    checks: [
      { name: 'linearizable', ok: true, summary: 'linearizable: 280 operations on 3 keys', details: [] },
      { name: 'no-lost-writes', ok: false, summary: '1 problems with acknowledged writes', details: ['key r/1: acknowledged write LOST: #42 ...'] },
    ],
    faults: [
      { id: 1, kind: 'partition', description: 'partition isolate-leader', startS: 3, endS: 6, targets: [1], notes: ['cut 1→2 1→3 2→1 3→1'] },
      { id: 2, kind: 'kill', description: 'kill leader', startS: 9, endS: 12, targets: [2], notes: [] },
    ],
    healedAtS: 14,
    leaderChanges: [{ atS: 0.2, leader: 1 }, { atS: 4.1, leader: 2 }, { atS: 9.2, leader: null }, { atS: 10, leader: 3 }],
    history: { ops },
    recoveryMs: 123,
    networkStats: { framesDropped: 0 },
  };
}

describe('chaos report', () => {
  it('is self-contained: no script, no external resource', () => {
    const html = renderReport(syntheticRun());
    assert.doesNotMatch(html, /<script|src=|href=/i);
    assert.match(html, /INVALID/);
    assert.match(html, /acknowledged write LOST/);
  });

  it('renders in headless Chromium and shows its charts', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (Debian package chromium; .ci/run installs it)` }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-report-'));
    const context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
    try {
      const file = join(dir, 'report.html');
      await writeFile(file, renderReport(syntheticRun()));
      const page = await context.newPage();
      await page.goto(pathToFileURL(file).href);
      assert.match((await page.textContent('#verdict')) ?? '', /INVALID/);
      const chart = page.locator('#latency-chart');
      const box = await chart.boundingBox();
      assert.ok(box !== null && box.width > 500 && box.height > 200, `the latency chart is laid out: ${JSON.stringify(box)}`);
      assert.equal(await page.locator('#latency-chart .ops circle').count(), 300, 'one point per operation');
      assert.equal(await page.locator('#latency-chart circle[fill="#c62828"]').count(), 15, 'failed operations in red');
      assert.equal(await page.locator('#latency-chart .fault-window').count(), 2, 'both fault windows shaded');
      assert.equal(await page.locator('#latency-chart .leader-change').count(), 4, 'every leader change marked');
      assert.ok((await page.locator('#throughput-chart rect').count()) > 30, 'throughput bars');
      assert.equal(await page.locator('#faults tr').count(), 3, 'a row per fault');
      const screenshot = join(dir, 'report.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      assert.ok((await stat(screenshot)).size > 20_000, 'the page painted something');
    } finally {
      await context.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

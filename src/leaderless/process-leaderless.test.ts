/**
 * Real `impulse serve --replication leaderless` processes on 127.0.0.1 (own
 * process groups, free ports, temp data directories; testkit/process):
 *
 *   - any member serves; concurrent blind writes become siblings (300 with
 *     every value and an Impulse-Context); a PUT with that context resolves them;
 *     `/cluster` names every member's client URL;
 *   - kill -9 of one member under 8 writers with W=2: writes keep being
 *     acknowledged; after it restarts, every acknowledged write is read back
 *     with R=all, read repair brings the restarted member up to date, and the
 *     three replicas' digests are equal;
 *   - one member paused (SIGSTOP) under writers: W=2 writes keep being
 *     acknowledged; resumed, after `repair` (anti-entropy) the digests are equal;
 *   - N=2 on three members: a killed owner's writes go to the third member as
 *     hints, which are delivered when it restarts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { ImpulseClient } from '../client/client.js';
import { ProcessCluster } from '../../testkit/process/cluster-process.js';

const SERVE_ARGS = ['--replication', 'leaderless', '--engine', 'lsm'];

async function put(url: string, key: string, value: string, query = '', context?: string): Promise<Response> {
  return fetch(`${url}/kv/${encodeURIComponent(key)}${query}`, { method: 'PUT', body: value, headers: context === undefined ? {} : { 'impulse-context': context } });
}

/** Waits until every member's failure detector sees every member up. */
async function allUp(cluster: ProcessCluster): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const views = await Promise.all([1, 2, 3].map((id) => cluster.view(id)));
    if (views.every((view) => view?.members.every((member) => member.role === 'up') === true)) return;
    if (Date.now() > deadline) throw new Error('the members did not all see each other up within 20 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('a three-member leaderless cluster of processes', () => {
  let cluster: ProcessCluster | undefined;
  after(async () => cluster?.close());

  it('serves on every member; concurrent blind writes become siblings (300) that a write with the context resolves', async () => {
    cluster = await ProcessCluster.start(3, { serveArgs: SERVE_ARGS });
    assert.equal((await put(cluster.url(1), 'a', 'one')).status, 204);
    const read = await fetch(`${cluster.url(3)}/kv/a`);
    assert.equal(read.status, 200);
    assert.equal(await read.text(), 'one');
    assert.ok(read.headers.get('impulse-context')?.startsWith('c1.'));
    // Two writes without a context are concurrent: both are kept.
    assert.equal((await put(cluster.url(1), 'a', 'left')).status, 204);
    assert.equal((await put(cluster.url(2), 'a', 'right')).status, 204);
    const both = await fetch(`${cluster.url(3)}/kv/a?r=all`);
    assert.equal(both.status, 300);
    const body = (await both.json()) as { siblings: { value: string }[] };
    assert.deepEqual(body.siblings.map((sibling) => sibling.value).sort(), ['left', 'one', 'right']);
    const context = both.headers.get('impulse-context')!;
    assert.equal((await put(cluster.url(2), 'a', 'merged', '?w=all', context)).status, 204);
    const resolved = await fetch(`${cluster.url(1)}/kv/a?r=all`);
    assert.equal(resolved.status, 200);
    assert.equal(await resolved.text(), 'merged');
    // /cluster names every member's client URL (the others' from their heartbeat answers).
    const c = cluster;
    const deadline = Date.now() + 20_000;
    let urls: (string | null)[] = [];
    while (Date.now() < deadline) {
      urls = ((await c.view(2))?.members ?? []).map((member) => member.clientUrl);
      if (urls.every((url, index) => url === c.url(index + 1)) && urls.length === 3) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(urls, [1, 2, 3].map((id) => c.url(id)));
    const page = (await fetch(`${cluster.url(2)}/kv?limit=10`).then((response) => response.json())) as { items: { key: string; value: string }[] };
    assert.deepEqual(page.items.map((item) => [item.key, item.value]), [['a', 'merged']]);
    const status = (await fetch(`${cluster.url(1)}/status`).then((response) => response.json())) as { mode: string };
    assert.equal(status.mode, 'leaderless');
    const view = (await fetch(`${cluster.url(2)}/cluster`).then((response) => response.json())) as { members: { id: number; role: string }[] };
    assert.deepEqual(view.members.map((member) => member.role), ['up', 'up', 'up']);
    const bad = await fetch(`${cluster.url(1)}/kv/a?r=7`);
    assert.equal(bad.status, 400);
  });

  it('keeps acknowledging W=2 writes with one member killed (-9) under 8 writers; nothing acknowledged is lost and the replicas converge', async () => {
    cluster ??= await ProcessCluster.start(3, { serveArgs: SERVE_ARGS });
    const acknowledged = new Map<string, string>();
    let stop = false;
    let failures = 0;
    const writer = async (index: number): Promise<void> => {
      for (let seq = 0; !stop; seq++) {
        const key = `w${index}-${seq}`;
        const url = cluster!.url(index % 2 === 0 ? 1 : 2);
        try {
          const response = await put(url, key, `v${seq}`, '?w=2');
          if (response.status === 204) acknowledged.set(key, `v${seq}`);
          else failures++;
        } catch {
          failures++;
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, index) => writer(index));
    await new Promise((resolve) => setTimeout(resolve, 500));
    await cluster.kill(3);
    const beforeKill = acknowledged.size;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const duringOutage = acknowledged.size - beforeKill;
    stop = true;
    await Promise.all(writers);
    assert.ok(duringOutage > 0, `writes were acknowledged while member 3 was down (${duringOutage}; failures ${failures})`);
    await cluster.start(3);
    // Until the members hear each other again (the others' connections to member 3 back off while it is down), R=all may time out.
    await allUp(cluster);
    for (const [key, value] of acknowledged) {
      let response = await fetch(`${cluster.url(3)}/kv/${key}?r=all`);
      for (let attempt = 0; response.status === 503 && attempt < 5; attempt++) response = await fetch(`${cluster.url(3)}/kv/${key}?r=all`);
      assert.equal(response.status, 200, `acknowledged ${key}`);
      assert.equal(await response.text(), value);
    }
    // Every key was read with R=all, so read repair sends member 3 what it missed.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const digests = await Promise.all([1, 2, 3].map((id) => fetch(`${cluster!.url(id)}/digest`).then((response) => response.json() as Promise<{ digest: string }>)));
      if (new Set(digests.map((digest) => digest.digest)).size === 1) break;
      if (Date.now() > deadline) throw new Error(`replicas did not converge: ${digests.map((digest) => digest.digest.slice(0, 8)).join(' ')}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  it('keeps acknowledging W=2 writes while one member is paused (SIGSTOP); resumed, repair makes the replicas equal', async () => {
    cluster ??= await ProcessCluster.start(3, { serveArgs: SERVE_ARGS });
    const c = cluster;
    c.signal(2, 'SIGSTOP');
    try {
      const written: string[] = [];
      const deadline = Date.now() + 2000;
      for (let seq = 0; Date.now() < deadline; seq++) {
        const response = await put(c.url(seq % 2 === 0 ? 1 : 3), `paused-${seq}`, 'p', '?w=2');
        assert.equal(response.status, 204, `write ${seq} while member 2 is paused`);
        written.push(`paused-${seq}`);
      }
      assert.ok(written.length > 0);
    } finally {
      c.signal(2, 'SIGCONT');
    }
    // Resumed, member 2 may still get the writes queued for it in its sockets; whatever it missed, repair brings.
    const report = await c.client(1, 30_000).repair();
    assert.ok(report.exchanges.every((exchange) => !('error' in exchange)), JSON.stringify(report));
    await c.client(3, 30_000).repair();
    const digests = await Promise.all([1, 2, 3].map((id) => c.client(id).digest()));
    assert.equal(new Set(digests.map((digest) => digest.digest)).size, 1);
  });

  it('N=2 on three members: writes owned by a killed member go to the third as hints, delivered when it restarts', async () => {
    await cluster?.close();
    cluster = await ProcessCluster.start(3, { serveArgs: [...SERVE_ARGS, '--replicas', '2'] });
    const c = cluster;
    await c.kill(3);
    // Wait until the others see member 3 down, so writes go to a fallback at once.
    const seenDown = Date.now() + 15_000;
    while ((await c.view(1))?.members.find((member) => member.id === 3)?.role !== 'down') {
      if (Date.now() > seenDown) throw new Error('member 3 never shown down');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const client = c.client(1);
    for (let index = 0; index < 40; index++) await client.putVersion(`h-${index}`, `v${index}`, { w: 2 });
    const figure = async (id: number, name: string): Promise<number> => ((await c.client(id).status()) as { figures: Record<string, number> }).figures[name] ?? 0;
    const stored = (await figure(1, 'leaderless_hints_stored')) + (await figure(2, 'leaderless_hints_stored'));
    assert.ok(stored > 0, 'some writes went to a stand-in as hints');
    await c.start(3);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const delivered = (await figure(1, 'leaderless_hints_delivered')) + (await figure(2, 'leaderless_hints_delivered'));
      if (delivered >= stored) break;
      if (Date.now() > deadline) throw new Error(`hints delivered ${delivered} of ${stored}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const three: ImpulseClient = c.client(3);
    for (let index = 0; index < 40; index++) assert.deepEqual((await three.getVersions(`h-${index}`, { r: 'all' })).values.map(String), [`v${index}`]);
  });
});

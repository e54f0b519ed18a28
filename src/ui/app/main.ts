/**
 * The dashboard (served at /ui by every node; docs/dashboard.md): members and
 * the leader, live request charts, engine figures, the key browser, chaos
 * runs. One poll a second feeds it (poller.ts); when the page's own node
 * stops answering, the page says so, keeps the last figures, and links to the
 * other members' dashboards.
 */
import { h, render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ChartsPanel } from './charts.js';
import { ChaosPanel } from './chaos.js';
import { EnginePanel } from './engine.js';
import { html } from './html.js';
import { KeysPanel } from './keys.js';
import { onAuthRequired, storedToken } from './api.js';
import { LoginPrompt, forgetToken } from './login.js';
import { MembersPanel } from './members.js';
import type { ClusterSnapshot } from './model.js';
import { ClusterPoller, RequestSeries } from './poller.js';
import { ShardsPanel } from './shards.js';

function App() {
  const [snapshot, setSnapshot] = useState<ClusterSnapshot | null>(null);
  const [version, setVersion] = useState(0);
  const series = useMemo(() => new RequestSeries(), []);
  // Set by a 401: the node wants a token (another one, when `refused`).
  const [login, setLogin] = useState<{ refused: boolean; message: string } | null>(null);
  useEffect(() => onAuthRequired((failure) => setLogin({ refused: storedToken() !== null, message: failure.message })), []);
  useEffect(() => {
    const poller = new ClusterPoller((next) => {
      if (next.pageNodeUp) series.add(next);
      setSnapshot(next);
      setVersion((count) => count + 1);
    });
    poller.start();
    return () => poller.stop();
  }, []);

  // The tab says which node and whether it answers: several members' pages are often open at once.
  useEffect(() => {
    if (snapshot === null) return;
    const node = snapshot.mode === 'single' ? 'single node' : `node ${snapshot.nodeId ?? '?'}`;
    document.title = `${snapshot.pageNodeUp ? '' : '✘ '}impulse · ${node}`;
  }, [snapshot?.nodeId, snapshot?.pageNodeUp, snapshot?.mode]);

  const prompt = login === null ? '' : html`<${LoginPrompt} refused=${login.refused} message=${login.message} done=${() => setLogin(null)} />`;
  if (snapshot === null) return login === null ? html`<p class="loading">impulse dashboard: asking the node…</p>` : html`<main>${prompt}</main>`;
  return html`
    <header>
      <h1>impulse</h1>
      <span class="meta">${snapshot.mode === 'single' ? html`<b>single node</b>` : html`cluster <b>${snapshot.clusterId ?? '?'}</b> · this page from <b>node ${snapshot.nodeId ?? '?'}</b>`}</span>
      <span class="meta">${versionLine(snapshot)}</span>
      <span class="meta" data-testid="updated">updated ${new Date(snapshot.takenAtMs).toLocaleTimeString()}</span>
      ${storedToken() !== null ? html`<button class="meta" onClick=${forgetToken} data-testid="forget-token">forget token</button>` : ''}
    </header>
    <main>
      ${prompt}
      ${!snapshot.pageNodeUp ? html`<${PageNodeDown} snapshot=${snapshot} />` : ''}
      <${MembersPanel} snapshot=${snapshot} />
      <${ChartsPanel} series=${series} memberIds=${snapshot.members.map((member) => member.id)} version=${version} />
      ${snapshot.shards !== null ? html`<${ShardsPanel} shards=${snapshot.shards} />` : ''}
      <${EnginePanel} snapshot=${snapshot} />
      <${KeysPanel} />
      <${ChaosPanel} />
    </main>
  `;
}

function PageNodeDown({ snapshot }: { snapshot: ClusterSnapshot }) {
  const others = snapshot.members.filter((member) => member.id !== snapshot.nodeId && member.clientUrl !== null);
  return html`
    <div class="banner" role="alert" data-testid="page-node-down">
      The node serving this page does not answer (${snapshot.pageNodeProblem}); the figures below are the last it gave.
      ${others.length > 0 ? html` Open another member's dashboard: ${others.map((member) => html`<a href=${`${member.clientUrl}/ui`}>node ${member.id}</a> `)}` : ''}
    </div>
  `;
}

function versionLine(snapshot: ClusterSnapshot): string {
  const own = snapshot.members.find((member) => member.id === snapshot.nodeId)?.status;
  return own === undefined || own === null ? '' : `impulse ${own.version} · ${own.engine} · up ${formatUptime(own.uptimeSeconds)}`;
}

function formatUptime(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

render(h(App, null), document.getElementById('app')!);

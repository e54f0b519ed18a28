/**
 * Chaos runs found in the node's --chaos-results directory, newest first, with
 * links to their reports. The JSON is `ChaosListing` of src/api/chaos-results.ts,
 * restated here (the browser code imports nothing of the server's); the
 * browser test (dashboard.test.ts) reads a listing through this panel.
 */
import { useEffect, useState } from 'preact/hooks';
import { describe, getJson } from './api.js';
import { html } from './html.js';

interface ChaosRunJson {
  readonly name: string;
  readonly problem: string | null;
  readonly valid: boolean | null;
  readonly seed: number | null;
  readonly workload: string | null;
  readonly nemesis: readonly string[];
  readonly nodes: number | null;
  readonly engine: string | null;
  readonly durationS: number | null;
  readonly checks: readonly { readonly name: string; readonly ok: boolean }[];
  readonly recoveryMs: number | null;
  readonly leaderChanges: number | null;
  readonly files: readonly string[];
}

interface ChaosListingJson {
  readonly dir: string | null;
  readonly runs: readonly ChaosRunJson[];
  readonly truncated: boolean;
}

/** Chaos results change only when a run ends: read them when the page opens and on request. */
export function ChaosPanel() {
  const [listing, setListing] = useState<ChaosListingJson | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const load = (): void => {
    getJson<ChaosListingJson>('/ui/api/chaos').then(
      (body) => (setListing(body), setProblem(null)),
      (error: unknown) => setProblem(describe(error)),
    );
  };
  useEffect(load, []);
  return html`
    <section class="wide" data-testid="chaos">
      <h2>Chaos runs <small>${listing?.dir ?? ''}</small> <button onClick=${load}>reload</button></h2>
      ${problem !== null ? html`<p class="error">${problem}</p>` : ''}
      ${listing === null ? '' : listing.dir === null ? html`<p class="muted">Start the node with <code>--chaos-results DIR</code> to list the chaos runs kept there (<code>impulse chaos --out DIR/run-name</code>).</p>` : listing.runs.length === 0 ? html`<p class="muted">No chaos runs in ${listing.dir} yet.</p>` : html`<${RunTable} listing=${listing} />`}
    </section>
  `;
}

function RunTable({ listing }: { listing: ChaosListingJson }) {
  return html`
    <table>
      <thead><tr><th>run</th><th>verdict</th><th>workload</th><th>nemesis</th><th class="num">seed</th><th class="num">nodes</th><th class="num">checks</th><th class="num">leader changes</th><th class="num">recovery</th><th>files</th></tr></thead>
      <tbody>
        ${listing.runs.map(
          (run) => html`<tr>
            <td>${run.name === '@' ? '(this directory)' : run.name}</td>
            <td>${run.problem !== null ? html`<span class="error">${run.problem}</span>` : run.valid === true ? html`<span class="ok">valid</span>` : run.valid === false ? html`<span class="error">INVALID</span>` : '—'}</td>
            <td>${run.workload ?? '—'}</td>
            <td>${run.nemesis.join(', ') || '—'}</td>
            <td class="num">${run.seed ?? '—'}</td>
            <td class="num">${run.nodes ?? '—'}</td>
            <td class="num" title=${run.checks.map((check) => `${check.ok ? '✔' : '✘'} ${check.name}`).join('\n')}>${run.checks.filter((check) => check.ok).length} / ${run.checks.length}</td>
            <td class="num">${run.leaderChanges ?? '—'}</td>
            <td class="num">${run.recoveryMs === null ? '—' : `${Math.round(run.recoveryMs)} ms`}</td>
            <td>${run.files.map((file) => html`<a href=${`/ui/chaos/${encodeURIComponent(run.name)}/${file}`} target="_blank" rel="noopener">${file}</a> `)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${listing.truncated ? html`<p class="muted">Only the newest ${listing.runs.length} runs are listed.</p>` : ''}
  `;
}

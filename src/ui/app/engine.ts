/**
 * Engine figures of one member (its /status "figures"): for the LSM tree the
 * levels, compaction backlog, stalls and cache; for the B+tree depth, pages
 * and cache; every figure in a table below, whatever the engine.
 */
import { useState } from 'preact/hooks';
import { formatBytes } from '../figures.js';
import { html } from './html.js';
import type { ClusterSnapshot, StatusJson } from './model.js';

const LSM_LEVELS = 7;

export function EnginePanel({ snapshot }: { snapshot: ClusterSnapshot }) {
  const [chosen, choose] = useState<number | null>(null);
  const up = snapshot.members.filter((member) => member.status !== null);
  const shown = up.find((member) => member.id === chosen) ?? up.find((member) => member.id === snapshot.nodeId) ?? up[0];
  return html`
    <section data-testid="engine">
      <h2>Engine <small>${shown !== undefined ? `${shown.status!.engine} on ${shown.id === 0 ? 'this node' : `node ${shown.id}`}` : 'no member answers'}</small></h2>
      ${snapshot.members.length > 1
        ? html`<div class="tabs">${snapshot.members.map(
            (member) => html`<button aria-pressed=${shown?.id === member.id} disabled=${member.status === null} onClick=${() => choose(member.id)}>node ${member.id}</button>`,
          )}</div>`
        : ''}
      ${shown !== undefined ? html`<${EngineFigures} status=${shown.status!} />` : html`<p class="muted">No figures: no member answers.</p>`}
    </section>
  `;
}

function EngineFigures({ status }: { status: StatusJson }) {
  const f = status.figures;
  const headline: [string, string][] = [
    ['keys', status.keyCount === null ? '—' : String(status.keyCount)],
    ['on disk', status.diskBytes === null ? '—' : formatBytes(status.diskBytes)],
    ['applied index', String(status.appliedIndex)],
    ['durability', status.durable ? `durable (${status.sync})` : 'not durable'],
  ];
  if (status.engine === 'lsm') {
    headline.push(
      ['memtable', formatBytes(f['memtable_bytes'] ?? 0)],
      ['compaction backlog', formatBytes(f['compaction_backlog_bytes'] ?? 0)],
      ['write stalls', `${f['write_stalls'] ?? 0} (${Math.round(f['write_stall_ms'] ?? 0)} ms)`],
      ['block cache hit ratio', ratio(f['block_cache_hit_ratio'])],
      ['write amplification', (f['write_amplification'] ?? 0).toFixed(2)],
      ['compactions', String(f['compactions'] ?? 0)],
    );
  } else if (status.engine === 'btree') {
    headline.push(
      ['tree depth', String(f['btree_depth'] ?? '—')],
      ['pages in use / total', `${f['btree_pages_in_use'] ?? '—'} / ${f['btree_pages_total'] ?? '—'}`],
      ['free pages', String(f['btree_pages_free'] ?? '—')],
      ['page cache hit ratio', ratio(f['btree_cache_hit_ratio'])],
      ['page cache', `${formatBytes(f['btree_cache_bytes'] ?? 0)} of ${formatBytes(f['btree_cache_bytes_max'] ?? 0)}`],
    );
  }
  return html`
    <div class="figures">${headline.map(([label, value]) => html`<div class="figure"><div class="label">${label}</div><div class="value">${value}</div></div>`)}</div>
    ${status.engine === 'lsm' ? html`<${LsmLevels} figures=${f} />` : ''}
    <details>
      <summary>all ${Object.keys(f).length} figures</summary>
      <table>
        <tbody>${Object.entries(f).map(([name, value]) => html`<tr><td>${name}</td><td class="num">${Number.isInteger(value) ? value : value.toFixed(3)}</td></tr>`)}</tbody>
      </table>
    </details>
  `;
}

function LsmLevels({ figures }: { figures: Readonly<Record<string, number>> }) {
  const levels = Array.from({ length: LSM_LEVELS }, (_, level) => ({ level, tables: figures[`level_${level}_tables`] ?? 0, bytes: figures[`level_${level}_bytes`] ?? 0 }));
  return html`
    <table data-testid="lsm-levels">
      <thead><tr><th>level</th><th class="num">tables</th><th class="num">bytes</th></tr></thead>
      <tbody>${levels.map((row) => html`<tr><td>L${row.level}</td><td class="num">${row.tables}</td><td class="num">${formatBytes(row.bytes)}</td></tr>`)}</tbody>
    </table>
  `;
}

function ratio(value: number | undefined): string {
  return value === undefined ? '—' : `${(value * 100).toFixed(1)} %`;
}

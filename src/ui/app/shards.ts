/**
 * The shard map (`GET /shards`, docs/sharding.md): each shard's key range,
 * replicas and leader, and this member's replica of it. On a cluster without
 * shards, one line says so.
 */
import { fromHex, formatBytes, keyLabel } from '../figures.js';
import { html } from './html.js';
import type { ShardsJson } from './model.js';

export function ShardsPanel({ shards }: { shards: ShardsJson }) {
  if (!shards.sharded) {
    return html`<section class="wide" data-testid="shards"><h2>Shards</h2><p class="muted">Not sharded: one Raft group holds every key (a new cluster started with <code>--split-keys</code> is).</p></section>`;
  }
  return html`
    <section class="wide" data-testid="shards">
      <h2>Shards <small>map version ${shards.version} · as node ${shards.nodeId} sees it</small></h2>
      <table>
        <thead><tr><th>shard</th><th>keys from</th><th>to (before)</th><th class="num">epoch</th><th>replicas</th><th>leader</th><th class="num">applied</th><th class="num">disk</th><th>state</th></tr></thead>
        <tbody>
          ${shards.shards.map(
            (shard) => html`<tr data-shard=${shard.id}>
              <td>${shard.id}</td>
              <td class="key">${shard.start === '' ? '(first key)' : keyLabel(fromHex(shard.start))}</td>
              <td class="key">${shard.end === null ? '(last key)' : keyLabel(fromHex(shard.end))}</td>
              <td class="num">${shard.epoch}</td>
              <td>${shard.replicas.join(', ')}</td>
              <td data-shard-leader>${shard.leader === null ? 'none' : `node ${shard.leader}`}</td>
              <td class="num">${shard.appliedIndex ?? '—'}</td>
              <td class="num">${shard.diskBytes === null ? '—' : formatBytes(shard.diskBytes)}</td>
              <td>${shard.local ? (shard.quiesced ? 'quiesced' : 'active') : 'not here'}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </section>
  `;
}

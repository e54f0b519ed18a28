/**
 * The key browser: keys by prefix, a page at a time (the range API's cursor);
 * a value as text or hex; put and delete, each only after a confirmation.
 * Deletes are conditional on the revision shown (If-Match), so a key changed
 * since it was viewed is not deleted blind: the 412 is shown instead.
 * Reads are linearizable (the API's default), so a key just written shows.
 */
import { useState } from 'preact/hooks';
import { bytesAsText, formatBytes, fromBase64, hexDump, keyLabel, percentEncodeBytes } from '../figures.js';
import { call, describe, getJson } from './api.js';
import { html } from './html.js';

interface RangeItemJson {
  readonly key: string;
  readonly value: string;
  readonly revision: number;
  readonly encoding?: string;
}

interface ListedKey {
  readonly key: Uint8Array;
  readonly valueBytes: number;
  readonly revision: number;
}

interface Viewed {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly revision: number;
}

type Pending = { readonly kind: 'put'; readonly key: string; readonly value: string } | { readonly kind: 'delete'; readonly viewed: Viewed };

const PAGE_SIZES = [20, 50, 100];
const utf8 = new TextEncoder();

export function KeysPanel() {
  const [prefix, setPrefix] = useState('');
  const [pageSize, setPageSize] = useState(PAGE_SIZES[0]!);
  const [page, setPage] = useState<{ items: ListedKey[]; next: string | null; cursor: string | null } | null>(null);
  const [viewed, setViewed] = useState<Viewed | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);

  const list = async (cursor: string | null): Promise<void> => {
    const query = `prefix=${percentEncodeBytes(utf8.encode(prefix))}&limit=${pageSize}&encoding=base64${cursor !== null ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    try {
      const body = await getJson<{ items: RangeItemJson[]; next: string | null }>(`/kv?${query}`);
      setPage({ items: body.items.map((item) => ({ key: fromBase64(item.key), valueBytes: fromBase64(item.value).length, revision: item.revision })), next: body.next, cursor });
    } catch (error) {
      setMessage({ ok: false, text: `listing failed: ${describe(error)}` });
    }
  };

  const view = async (key: Uint8Array): Promise<void> => {
    try {
      const response = await call(`/kv/${percentEncodeBytes(key)}`);
      setViewed({ key, value: new Uint8Array(await response.arrayBuffer()), revision: revisionOf(response) });
    } catch (error) {
      setViewed(null);
      setMessage({ ok: false, text: `${keyLabel(key)}: ${describe(error)}` });
    }
  };

  const confirm = async (action: Pending): Promise<void> => {
    setPending(null);
    try {
      if (action.kind === 'put') {
        const key = utf8.encode(action.key);
        const response = await call(`/kv/${percentEncodeBytes(key)}`, { method: 'PUT', body: action.value, headers: { 'content-type': 'application/octet-stream' } });
        setMessage({ ok: true, text: `wrote ${keyLabel(key)} at revision ${revisionOf(response)}` });
        await view(key);
      } else {
        const { key, revision } = action.viewed;
        const response = await call(`/kv/${percentEncodeBytes(key)}`, { method: 'DELETE', headers: { 'if-match': `"${revision}"` } });
        setMessage({ ok: true, text: `deleted ${keyLabel(key)} at revision ${revisionOf(response)}` });
        setViewed(null);
      }
      if (page !== null) await list(page.cursor);
    } catch (error) {
      setMessage({ ok: false, text: describe(error) });
    }
  };

  return html`
    <section class="keys" data-testid="keys">
      <h2>Keys</h2>
      <form class="row" onSubmit=${(event: Event) => (event.preventDefault(), setMessage(null), void list(null))}>
        <input type="text" placeholder="key prefix (empty: all keys)" value=${prefix} data-testid="prefix" onInput=${(event: Event) => setPrefix((event.target as HTMLInputElement).value)} />
        <select value=${pageSize} onChange=${(event: Event) => setPageSize(Number((event.target as HTMLSelectElement).value))}>
          ${PAGE_SIZES.map((size) => html`<option value=${size}>${size} a page</option>`)}
        </select>
        <button class="primary" type="submit" data-testid="search">Search</button>
      </form>
      ${page !== null ? html`<${KeyList} page=${page} selected=${viewed?.key ?? null} onView=${(key: Uint8Array) => void view(key)} onFirst=${() => void list(null)} onNext=${() => void list(page.next)} />` : ''}
      ${viewed !== null ? html`<${ValueView} viewed=${viewed} onDelete=${() => setPending({ kind: 'delete', viewed })} />` : ''}
      <${PutForm} onPut=${(key: string, value: string) => setPending({ kind: 'put', key, value })} />
      ${pending !== null ? html`<${Confirm} pending=${pending} onConfirm=${() => void confirm(pending)} onCancel=${() => setPending(null)} />` : ''}
      ${message !== null ? html`<p class=${message.ok ? 'ok' : 'error'} data-testid="key-message">${message.text}</p>` : ''}
    </section>
  `;
}

function KeyList({ page, selected, onView, onFirst, onNext }: { page: { items: ListedKey[]; next: string | null; cursor: string | null }; selected: Uint8Array | null; onView: (key: Uint8Array) => void; onFirst: () => void; onNext: () => void }) {
  if (page.items.length === 0) return html`<p class="muted" data-testid="no-keys">No keys${page.cursor !== null ? ' on this page' : ' with this prefix'}.</p>`;
  return html`
    <table data-testid="key-list">
      <thead><tr><th>key</th><th class="num">value</th><th class="num">revision</th></tr></thead>
      <tbody>
        ${page.items.map(
          (item) => html`<tr class=${selected !== null && sameBytes(selected, item.key) ? 'selected' : ''} onClick=${() => onView(item.key)}>
            <td class="key">${keyLabel(item.key)}</td><td class="num">${formatBytes(item.valueBytes)}</td><td class="num">${item.revision}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    <div class="row">
      <button disabled=${page.cursor === null} onClick=${onFirst}>first page</button>
      <button disabled=${page.next === null} onClick=${onNext} data-testid="next-page">next page</button>
    </div>
  `;
}

function ValueView({ viewed, onDelete }: { viewed: Viewed; onDelete: () => void }) {
  const text = bytesAsText(viewed.value);
  const [asHex, setAsHex] = useState(false);
  const hex = asHex || text === undefined;
  return html`
    <div data-testid="value-view">
      <div class="row">
        <b class="key">${keyLabel(viewed.key)}</b>
        <span class="muted">revision ${viewed.revision} · ${formatBytes(viewed.value.length)}</span>
        <button aria-pressed=${!hex} disabled=${text === undefined} onClick=${() => setAsHex(false)}>text</button>
        <button aria-pressed=${hex} onClick=${() => setAsHex(true)}>hex</button>
        <button class="danger" onClick=${onDelete} data-testid="delete">Delete…</button>
      </div>
      <pre class="value" data-testid="value">${hex ? hexDump(viewed.value) : text}</pre>
    </div>
  `;
}

function PutForm({ onPut }: { onPut: (key: string, value: string) => void }) {
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  return html`
    <form onSubmit=${(event: Event) => (event.preventDefault(), key.length > 0 && onPut(key, value))}>
      <div class="row">
        <input type="text" placeholder="key" value=${key} data-testid="put-key" onInput=${(event: Event) => setKey((event.target as HTMLInputElement).value)} />
        <button type="submit" disabled=${key.length === 0} data-testid="put">Put…</button>
      </div>
      <textarea placeholder="value (UTF-8 text)" value=${value} data-testid="put-value" onInput=${(event: Event) => setValue((event.target as HTMLTextAreaElement).value)}></textarea>
    </form>
  `;
}

function Confirm({ pending, onConfirm, onCancel }: { pending: Pending; onConfirm: () => void; onCancel: () => void }) {
  const question =
    pending.kind === 'put'
      ? `Write ${formatBytes(utf8.encode(pending.value).length)} under ${JSON.stringify(pending.key)}? An existing value is replaced.`
      : `Delete ${keyLabel(pending.viewed.key)}? Only if it is still at revision ${pending.viewed.revision}.`;
  return html`
    <div class="confirm" role="alertdialog" data-testid="confirm">
      <span>${question}</span>
      <div class="row">
        <button class=${pending.kind === 'put' ? 'primary' : 'danger'} onClick=${onConfirm} data-testid="confirm-yes">${pending.kind === 'put' ? 'Write' : 'Delete'}</button>
        <button onClick=${onCancel} data-testid="confirm-no">Cancel</button>
      </div>
    </div>
  `;
}

/** The revision in an answer's ETag (`"12"`). */
function revisionOf(response: Response): number {
  return Number((response.headers.get('etag') ?? '').replace(/"/g, ''));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * Keys under causal versions (leaderless mode, docs/leaderless.md): the
 * parsing and response bodies of `GET|HEAD|PUT|DELETE /kv/{key}` when the
 * service offers `causal`. No sockets here; server.ts calls these.
 *
 *   GET  /kv/{key}?r=2      200 one value · 300 {"siblings": [...]} · 404 — each with Impulse-Context
 *   PUT  /kv/{key}?w=2      Impulse-Context: <from a GET> → 204 with the new Impulse-Context
 *   DELETE /kv/{key}?w=all  the same; the delete is a tombstone superseding what the context saw
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ImpulseError } from '../errors.js';
import { isUtf8 } from 'node:buffer';

export const CONTEXT_HEADER = 'impulse-context';

/** The `r` (reads) or `w` (writes) parameter of a key request, the only one it takes; undefined when absent. */
export function quorumParameter(query: string, name: 'r' | 'w'): string | undefined {
  let value: string | undefined;
  for (const pair of query.split('&')) {
    if (pair.length === 0) continue;
    const [field, text = ''] = pair.split('=', 2) as [string, string?];
    if (field !== name) throw new ImpulseError('IMPULSE_ERR_QUERY_INVALID', `unknown parameter ${JSON.stringify(field.slice(0, 32))}; this request takes only ${name} (leaderless mode)`);
    if (value !== undefined) throw new ImpulseError('IMPULSE_ERR_QUERY_INVALID', `parameter ${name} given twice`);
    value = text;
  }
  return value;
}

/**
 * The context a write sends back (undefined: a blind write). Conditions are
 * refused (revisions do not exist here). Session headers are ignored: there
 * is no deduplication in leaderless mode, and a retried write may leave a
 * second sibling with the same value (as in Riak), never a lost one.
 */
export function causalWriteContext(headers: IncomingHttpHeaders): string | undefined {
  for (const refused of ['if-match', 'if-none-match']) {
    if (headers[refused] !== undefined) {
      throw new ImpulseError('IMPULSE_ERR_LEADERLESS_UNSUPPORTED', `${refused} is not offered in leaderless mode; send the Impulse-Context of a GET to supersede exactly what it returned`);
    }
  }
  const context = headers[CONTEXT_HEADER];
  return Array.isArray(context) ? context.join(', ') : context;
}

/** The body of a 300 answer: every sibling value, UTF-8 text where it is, else base64 with `"encoding": "base64"`. */
export function siblingsBody(values: readonly Buffer[]): string {
  return JSON.stringify({ siblings: values.map((value) => (isUtf8(value) ? { value: value.toString('utf8') } : { value: value.toString('base64'), encoding: 'base64' })) });
}

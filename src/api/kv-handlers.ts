/**
 * The key-value endpoints. Pure request → service call → response-body logic;
 * no sockets here (server.ts owns those), so the parsing can be tested alone.
 */
import { ImpulseError } from '../errors.js';
import type { Condition, KvOp } from '../kv/command.js';
import type { KvService, ReadConsistency } from '../service/kv-service.js';
import { type RangeOptions, prefixUpperBound } from '../storage/engine.js';
import { type WireEncoding, decodeCursor, decodeWire, encodeCursor, encodeItem, percentDecode } from '../protocol/codec.js';
import { parseStrictJson } from './strict-json.js';
import { consistencyOf } from './write-headers.js';

export interface RangeQuery {
  readonly options: RangeOptions;
  readonly pageLimit: number;
  readonly encoding: WireEncoding;
  readonly consistency: ReadConsistency;
}

const RANGE_PARAMETERS = new Set(['start', 'end', 'prefix', 'limit', 'reverse', 'cursor', 'encoding', 'consistency']);

/**
 * Parses `start`, `end`, `prefix`, `limit`, `reverse`, `cursor`, `encoding`
 * and `consistency` of `GET /kv`. Bounds are percent-encoded bytes ('+' is a space, as in any
 * query string); an empty bound means unbounded. The range is `[start, end)`
 * intersected with the keys that start with `prefix`; a cursor continues after
 * (forward) or before (reverse) the last key of the previous page.
 */
export function parseRangeQuery(query: string, pageLimitDefault: number, pageLimitMax: number): RangeQuery {
  const params = new Map<string, Buffer>();
  if (query.length > 0) {
    for (const pair of query.split('&')) {
      if (pair.length === 0) continue;
      const equals = pair.indexOf('=');
      const name = percentDecode(equals === -1 ? pair : pair.slice(0, equals), true, 'IMPULSE_ERR_RANGE_INVALID').toString('latin1');
      const value = percentDecode(equals === -1 ? '' : pair.slice(equals + 1), true, 'IMPULSE_ERR_RANGE_INVALID');
      if (!RANGE_PARAMETERS.has(name)) {
        throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', `unknown parameter ${JSON.stringify(name.slice(0, 32))}; known: ${[...RANGE_PARAMETERS].join(', ')}`);
      }
      if (params.has(name)) throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', `parameter ${name} given twice`);
      params.set(name, value);
    }
  }
  const text = (name: string): string | undefined => params.get(name)?.toString('latin1');
  const bytes = (name: string): Buffer | undefined => {
    const value = params.get(name);
    return value === undefined || value.length === 0 ? undefined : value;
  };

  let pageLimit = pageLimitDefault;
  const limitText = text('limit');
  if (limitText !== undefined) {
    if (!/^[0-9]{1,9}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > pageLimitMax) {
      throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', `limit must be an integer from 1 to ${pageLimitMax}`);
    }
    pageLimit = Number(limitText);
  }
  const reverseText = text('reverse');
  if (reverseText !== undefined && reverseText !== 'true' && reverseText !== 'false') {
    throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'reverse must be true or false');
  }
  const reverse = reverseText === 'true';
  const encodingText = text('encoding') ?? 'utf8';
  if (encodingText !== 'utf8' && encodingText !== 'base64') throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'encoding must be utf8 or base64');
  const consistency = consistencyOf(text('consistency'), 'IMPULSE_ERR_RANGE_INVALID');

  // Lower bound: the larger of start and prefix (inclusive). Upper: the smaller of end and the prefix's successor (exclusive).
  let lower = bytes('start');
  let upper = bytes('end');
  const prefix = bytes('prefix');
  if (prefix !== undefined) {
    if (lower === undefined || Buffer.compare(prefix, lower) > 0) lower = prefix;
    const prefixEnd = prefixUpperBound(prefix);
    if (prefixEnd !== undefined && (upper === undefined || Buffer.compare(prefixEnd, upper) < 0)) upper = prefixEnd;
  }
  let lowerExclusive = false;
  const cursorText = text('cursor');
  if (cursorText !== undefined) {
    const after = decodeCursor(cursorText);
    if (!reverse && (lower === undefined || Buffer.compare(after, lower) >= 0)) {
      lower = after;
      lowerExclusive = true;
    } else if (reverse && (upper === undefined || Buffer.compare(after, upper) < 0)) {
      upper = after;
    }
  }
  const options: RangeOptions = {
    ...(lower !== undefined ? (lowerExclusive ? { gt: lower } : { gte: lower }) : {}),
    ...(upper !== undefined ? { lt: upper } : {}),
    reverse,
    limit: pageLimit + 1, // one extra tells whether a next page exists
  };
  return { options, pageLimit, encoding: encodingText, consistency };
}

/** Runs a parsed range query and builds the JSON page `{items, next}`; each item carries its revision. */
export async function rangePage(service: KvService, query: RangeQuery): Promise<string> {
  const entries = await service.range(query.options, { consistency: query.consistency });
  const hasMore = entries.length > query.pageLimit;
  const page = hasMore ? entries.slice(0, query.pageLimit) : entries;
  const items = page.map((entry) =>
    Object.assign(
      encodeItem(entry.key, entry.value, query.encoding),
      { revision: entry.revision },
      // Leaderless: every sibling of the key, each encoded like the item's value.
      entry.siblings !== undefined ? { siblings: entry.siblings.map((value) => encodeItem(entry.key, value, query.encoding).value) } : {},
    ),
  );
  const next = hasMore ? encodeCursor(page[page.length - 1]!.key) : null;
  return JSON.stringify({ items, next });
}

const BATCH_FIELDS = new Set(['ops', 'encoding']);
const PUT_FIELDS = new Set(['op', 'key', 'value', 'ifRevision', 'ifAbsent']);
const DELETE_FIELDS = new Set(['op', 'key', 'ifRevision']);

/**
 * Parses a batch document:
 *   {"encoding": "utf8" | "base64" (default utf8),
 *    "ops": [{"op": "put", "key", "value", "ifRevision"?, "ifAbsent"?}, {"op": "delete", "key", "ifRevision"?}]}
 * Unknown fields are rejected (a typo must not silently drop an operation or a condition), and
 * so are duplicate names and strings that are not exact Unicode (strict-json.ts).
 */
export function parseBatch(body: Buffer, batchOpsMax: number): KvOp[] {
  // Strict: no duplicate names (JSON.parse keeps the last "ops"), no lone surrogates, no bytes that are not UTF-8.
  const document = parseStrictJson(body, 'IMPULSE_ERR_BATCH_INVALID', 'batch body');
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', 'batch body must be a JSON object {"ops": [...]}');
  }
  for (const field of Object.keys(document)) {
    if (!BATCH_FIELDS.has(field)) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `unknown batch field ${JSON.stringify(field.slice(0, 32))}`);
  }
  const { ops, encoding = 'utf8' } = document as { ops?: unknown; encoding?: unknown };
  if (encoding !== 'utf8' && encoding !== 'base64') throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', 'encoding must be "utf8" or "base64"');
  if (!Array.isArray(ops)) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', '"ops" must be an array');
  if (ops.length > batchOpsMax) {
    throw new ImpulseError('IMPULSE_ERR_BATCH_TOO_LARGE', `batch has ${ops.length} operations; the limit is ${batchOpsMax}`);
  }
  return ops.map((op: unknown, index): KvOp => {
    if (op === null || typeof op !== 'object' || Array.isArray(op)) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `ops[${index}] must be an object`);
    const { op: kind, key, value, ifRevision, ifAbsent } = op as { op?: unknown; key?: unknown; value?: unknown; ifRevision?: unknown; ifAbsent?: unknown };
    const allowed = kind === 'put' ? PUT_FIELDS : kind === 'delete' ? DELETE_FIELDS : undefined;
    if (allowed === undefined) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `ops[${index}].op must be "put" or "delete"`);
    for (const field of Object.keys(op)) {
      if (!allowed.has(field)) throw new ImpulseError('IMPULSE_ERR_BATCH_INVALID', `ops[${index}] has unexpected field ${JSON.stringify(field.slice(0, 32))}`);
    }
    const keyBytes = decodeWire(key, encoding, 'IMPULSE_ERR_BATCH_INVALID', `ops[${index}].key`);
    const condition = batchCondition(ifRevision, ifAbsent, index);
    const withCondition = condition === undefined ? {} : { condition };
    if (kind === 'delete') return { type: 'del', key: keyBytes, ...withCondition };
    return { type: 'put', key: keyBytes, value: decodeWire(value, encoding, 'IMPULSE_ERR_BATCH_INVALID', `ops[${index}].value`), ...withCondition };
  });
}

/** An op's `ifRevision` (a positive integer) or `ifAbsent` (true), at most one. */
function batchCondition(ifRevision: unknown, ifAbsent: unknown, index: number): Condition | undefined {
  if (ifRevision !== undefined && ifAbsent !== undefined) throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', `ops[${index}]: give ifRevision or ifAbsent, not both`);
  if (ifRevision !== undefined) {
    if (typeof ifRevision !== 'number' || !Number.isSafeInteger(ifRevision) || ifRevision < 1) {
      throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', `ops[${index}].ifRevision must be a positive integer`);
    }
    return { ifRevision };
  }
  if (ifAbsent !== undefined) {
    if (ifAbsent !== true) throw new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', `ops[${index}].ifAbsent must be true when given`);
    return { ifAbsent: true };
  }
  return undefined;
}

/**
 * The HTTP side of revisions, conditions, sessions and read consistency:
 * parsing the request headers and query parameters into what the service
 * takes, and the `ETag` of a revision. Pure functions; server.ts calls them.
 *
 *   ETag: "<revision>"                 on GET/HEAD 200 and on write 204s
 *   If-Match: "<revision>"             PUT, DELETE: only if the key has that revision
 *   If-None-Match: *                   PUT: only if the key does not exist
 *   Impulse-Client-Id: <id>            a write's session (both or neither of id and seq)
 *   Impulse-Client-Seq: <n>
 *   Impulse-Client-Acked-Below: <n>    optional: the client has its answers for every seq below n
 *   Impulse-Shard: <shard>:<epoch>     a key request's route by the client's shard map (src/protocol/shard-route.ts)
 *   ?consistency=linearizable|serializable   on GET/HEAD /kv/{key} and GET /kv
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ImpulseError } from '../errors.js';
import type { Condition, Session } from '../kv/command.js';
import { validateSession } from '../kv/command.js';
import { READ_CONSISTENCIES, type ReadConsistency, type RouteOptions } from '../service/kv-service.js';
import { SHARD_ROUTE_HEADER, parseShardRoute } from '../protocol/shard-route.js';

/** The ETag of a revision: a strong entity tag holding the number. */
export function etagOf(revision: number): string {
  return `"${revision}"`;
}

const ONE_ETAG = /^"([0-9]{1,16})"$/;

/**
 * The condition a single-key write's headers ask for, or undefined. One
 * strong ETag in If-Match; exactly `*` in If-None-Match, on PUT only. Anything
 * else (weak tags, lists, `If-Match: *`, both headers) is
 * IMPULSE_ERR_CONDITION_INVALID: a condition we cannot honour exactly must not
 * be ignored.
 */
export function conditionOf(headers: IncomingHttpHeaders, method: 'PUT' | 'DELETE'): Condition | undefined {
  const ifMatch = headers['if-match'];
  const ifNoneMatch = headers['if-none-match'];
  if (ifMatch === undefined && ifNoneMatch === undefined) return undefined;
  if (ifMatch !== undefined && ifNoneMatch !== undefined) throw invalid('give If-Match or If-None-Match, not both');
  if (ifMatch !== undefined) {
    const match = ONE_ETAG.exec(ifMatch.trim());
    const revision = match === null ? NaN : Number(match[1]);
    if (!Number.isSafeInteger(revision) || revision < 1) throw invalid('If-Match takes exactly one revision ETag, e.g. If-Match: "42" (no lists, weak tags or *)');
    return { ifRevision: revision };
  }
  if (method !== 'PUT') throw invalid('If-None-Match is for PUT (create only); DELETE takes If-Match');
  if (ifNoneMatch!.trim() !== '*') throw invalid('If-None-Match takes only *, meaning "create only"');
  return { ifAbsent: true };
}

/** The session a write's headers carry, or undefined when they carry none. */
export function sessionOf(headers: IncomingHttpHeaders): Session | undefined {
  const clientId = single(headers, 'impulse-client-id');
  const seq = single(headers, 'impulse-client-seq');
  const ackedBelow = single(headers, 'impulse-client-acked-below');
  if (clientId === undefined && seq === undefined && ackedBelow === undefined) return undefined;
  if (clientId === undefined || seq === undefined) throw new ImpulseError('IMPULSE_ERR_SESSION_INVALID', 'Impulse-Client-Id and Impulse-Client-Seq go together');
  const session: Session = { clientId, seq: integer(seq), ...(ackedBelow !== undefined ? { ackedBelow: integer(ackedBelow) } : {}) };
  validateSession(session);
  return session;
}

/** The route (`Impulse-Shard`) a key request's headers carry, as service options; IMPULSE_ERR_SHARD_ROUTE_INVALID when malformed. */
export function routeOf(headers: IncomingHttpHeaders): RouteOptions {
  const route = parseShardRoute(single(headers, SHARD_ROUTE_HEADER));
  return route === undefined ? {} : { route };
}

/**
 * The read consistency named by `value` (a `consistency` query parameter),
 * linearizable when absent. `errorCode` says which error an unknown value is.
 */
export function consistencyOf(value: string | undefined, errorCode: 'IMPULSE_ERR_QUERY_INVALID' | 'IMPULSE_ERR_RANGE_INVALID'): ReadConsistency {
  if (value === undefined) return 'linearizable';
  if (!(READ_CONSISTENCIES as readonly string[]).includes(value)) throw new ImpulseError(errorCode, `consistency must be ${READ_CONSISTENCIES.join(' or ')}`);
  return value as ReadConsistency;
}

/**
 * The `consistency` of a key request's query string ('' for none). Any other
 * parameter is IMPULSE_ERR_QUERY_INVALID: a typo must not be silently ignored.
 */
export function keyQueryConsistency(query: string): ReadConsistency {
  if (query.length === 0) return 'linearizable';
  let consistency: string | undefined;
  for (const pair of query.split('&')) {
    if (pair.length === 0) continue;
    const [name, value = ''] = pair.split('=', 2) as [string, string?];
    if (name !== 'consistency') throw new ImpulseError('IMPULSE_ERR_QUERY_INVALID', `unknown parameter ${JSON.stringify(name.slice(0, 32))}; a key request takes only consistency`);
    if (consistency !== undefined) throw new ImpulseError('IMPULSE_ERR_QUERY_INVALID', 'parameter consistency given twice');
    consistency = value;
  }
  return consistencyOf(consistency, 'IMPULSE_ERR_QUERY_INVALID');
}

/** A header's value. node:http joins a repeated custom header with ", ", which no valid value contains. */
function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function integer(text: string): number {
  return /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN; // NaN fails validateSession with a clear message
}

function invalid(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONDITION_INVALID', message);
}

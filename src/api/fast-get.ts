/**
 * The commonest request, `GET /kv/{key}` with a plain key, recognised and
 * answered with as little work as node:http allows (server.ts calls these
 * from its request handler, before any routing).
 *
 * `plainGetKey` says whether a request is that form and, if so, which key it
 * names; every other request (HEAD, a query string, a percent-escape, a body,
 * an `Expect`, an `Impulse-Shard` route, a key too long or empty) goes the general way,
 * which answers it exactly as before (and with the same errors). The answers
 * written here carry the same status, header fields and body as the general
 * path's; only the place of `Content-Length` among the fields differs (it
 * comes before `Date` instead of after `Keep-Alive`): the head is handed to
 * node:http as one array (`writeHead`), so no per-request header object or
 * `setHeader` call is needed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ImpulseError } from '../errors.js';
import type { StoredValue } from '../kv/record.js';
import { JSON_TYPE, OCTET_TYPE } from './responses.js';
import { etagOf } from './write-headers.js';

const KEY_PATH = '/kv/';
/** The body of a 404 for an absent key, prebuilt: a GET of an absent key is a normal outcome. */
export const KEY_NOT_FOUND_BODY = JSON.stringify(new ImpulseError('IMPULSE_ERR_KEY_NOT_FOUND').toJSON());
const KEY_NOT_FOUND_BYTES = Buffer.from(KEY_NOT_FOUND_BODY, 'utf8');
const KEY_NOT_FOUND_HEAD: readonly string[] = ['content-type', JSON_TYPE, 'Content-Length', String(KEY_NOT_FOUND_BYTES.length)];

/**
 * The key of `req` when it is `GET /kv/{key}` with a key of 1..`keyBytesMax`
 * bytes written without percent-escapes, no query string, no body, no
 * `Expect` and no `Impulse-Shard` header; undefined for any other request. The key is a
 * latin1 string: node:http hands the request target over as latin1 (one char
 * per byte), so the key's bytes are its chars, as `percentDecode` would give
 * them (`KvService.getSyncLatin1` takes it so). Reads `req` only.
 */
export function plainGetKey(req: IncomingMessage, keyBytesMax: number): string | undefined {
  const url = req.url;
  if (req.method !== 'GET' || url === undefined || !url.startsWith(KEY_PATH)) return undefined;
  const keyBytes = url.length - KEY_PATH.length;
  if (keyBytes === 0 || keyBytes > keyBytesMax || url.includes('%', KEY_PATH.length) || url.includes('?', KEY_PATH.length)) return undefined;
  const headers = req.headers;
  // A body the general path would settle (drain or close), an expectation it answers (an unsent 100 Continue closes the
  // connection: body.ts `settleUnreadBody`), a route it would check (write-headers.ts `routeOf`).
  if (headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined || headers.expect !== undefined || headers['impulse-shard'] !== undefined) {
    return undefined;
  }
  return url.slice(KEY_PATH.length);
}

/**
 * Answers a GET of one key on a connection that stays open: 200 with the
 * value, its revision as ETag and octet-stream type, or the 404 of an absent
 * key. Returns the status. Only for a response nothing was written to yet.
 */
export function writeGetAnswer(res: ServerResponse, stored: StoredValue | undefined): number {
  if (stored === undefined) {
    res.writeHead(404, KEY_NOT_FOUND_HEAD as string[]);
    res.end(KEY_NOT_FOUND_BYTES);
    return 404;
  }
  res.writeHead(200, ['etag', etagOf(stored.revision), 'content-type', OCTET_TYPE, 'Content-Length', String(stored.value.length)]);
  res.end(stored.value);
  return 200;
}

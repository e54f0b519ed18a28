/**
 * Reply encoding, RESP2 and RESP3. A reply is one Buffer, encoded as soon as
 * the command's result is known, so a connection only concatenates buffers.
 *
 * Where the two versions differ (a connection picks one with HELLO):
 *   - null: RESP2 `$-1` (a null bulk string); RESP3 `_`;
 *   - map: RESP2 a flat array `k1 v1 k2 v2 ...`; RESP3 `%<pairs>`;
 *   - everything else used here (simple strings, errors, integers, bulk
 *     strings, arrays) is the same in both.
 */

export type ProtocolVersion = 2 | 3;

const CRLF = '\r\n';

/** `+text`; `text` must not contain CR or LF (callers pass constants). */
export function simpleString(text: string): Buffer {
  return Buffer.from(`+${text}${CRLF}`, 'latin1');
}

/**
 * `-CODE message`; CR and LF in the message become spaces (an error line cannot
 * hold them). `encoding` 'latin1' sends one byte per character (for raw bytes
 * a client sent, echoed back as Redis does).
 */
export function errorReply(line: string, encoding: 'utf8' | 'latin1' = 'utf8'): Buffer {
  return Buffer.from(`-${line.replace(/[\r\n]/g, ' ')}${CRLF}`, encoding);
}

export function integerReply(value: number): Buffer {
  return Buffer.from(`:${value}${CRLF}`, 'latin1');
}

/**
 * `$<len>\r\n<bytes>\r\n`; a string is sent as UTF-8. The header's digits are
 * written as bytes (no string made and encoded per reply: GET's every reply).
 */
export function bulkReply(value: Uint8Array | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const length = bytes.length;
  let digits = 1;
  for (let rest = length; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  const headerBytes = digits + 3;
  const reply = Buffer.allocUnsafe(headerBytes + length + 2);
  reply[0] = 0x24; // '$'
  for (let at = digits, rest = length; at >= 1; at--, rest = Math.floor(rest / 10)) reply[at] = 0x30 + (rest % 10);
  reply[headerBytes - 2] = 0x0d;
  reply[headerBytes - 1] = 0x0a;
  reply.set(bytes, headerBytes);
  reply[headerBytes + length] = 0x0d;
  reply[headerBytes + length + 1] = 0x0a;
  return reply;
}

export const OK = simpleString('OK');
export const PONG = simpleString('PONG');
const NULL_BULK = Buffer.from(`$-1${CRLF}`, 'latin1');
const NULL_RESP3 = Buffer.from(`_${CRLF}`, 'latin1');
const EMPTY_ARRAY = Buffer.from(`*0${CRLF}`, 'latin1');

export function nullReply(proto: ProtocolVersion): Buffer {
  return proto === 3 ? NULL_RESP3 : NULL_BULK;
}

/** An array of already encoded replies. */
export function arrayReply(items: readonly Buffer[]): Buffer {
  if (items.length === 0) return EMPTY_ARRAY;
  return Buffer.concat([Buffer.from(`*${items.length}${CRLF}`, 'latin1'), ...items]);
}

/** A map of already encoded keys and values, `[k1, v1, k2, v2, ...]`: RESP3 `%`, RESP2 a flat array. */
export function mapReply(proto: ProtocolVersion, flat: readonly Buffer[]): Buffer {
  if (proto === 2) return arrayReply(flat);
  return Buffer.concat([Buffer.from(`%${flat.length / 2}${CRLF}`, 'latin1'), ...flat]);
}

/** A bulk string or null per item (MGET). */
export function bulkOrNullArray(proto: ProtocolVersion, values: readonly (Uint8Array | undefined)[]): Buffer {
  return arrayReply(values.map((value) => (value === undefined ? nullReply(proto) : bulkReply(value))));
}

/**
 * A plain JavaScript value as a reply (for HELLO, COMMAND, ...): strings are
 * bulk strings, integers integers, arrays arrays, `Map`s maps.
 */
export type ReplyValue = string | number | Buffer | null | readonly ReplyValue[] | ReadonlyMap<string, ReplyValue>;

export function valueReply(proto: ProtocolVersion, value: ReplyValue): Buffer {
  if (value === null) return nullReply(proto);
  if (typeof value === 'string' || Buffer.isBuffer(value)) return bulkReply(value);
  if (typeof value === 'number') return integerReply(value);
  if (value instanceof Map) {
    const flat: Buffer[] = [];
    for (const [key, item] of value) flat.push(bulkReply(key), valueReply(proto, item));
    return mapReply(proto, flat);
  }
  return arrayReply((value as readonly ReplyValue[]).map((item) => valueReply(proto, item)));
}

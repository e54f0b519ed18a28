/**
 * Wire encodings of the HTTP API: keys in paths and query strings, the
 * `utf8`/`base64` encodings of range results and batch bodies, and cursors.
 */
import { isUtf8 } from 'node:buffer';
import { ImpulseError, type ErrorCode } from '../errors.js';

export type WireEncoding = 'utf8' | 'base64';

const HEX: Record<string, number> = {};
for (let i = 0; i < 16; i++) {
  HEX[i.toString(16)] = i;
  HEX[i.toString(16).toUpperCase()] = i;
}

/**
 * Decodes a percent-encoded string to the raw bytes it names. Characters that
 * are not escaped stand for their own byte (Node hands us the request target
 * as latin1, one char per byte). `plusIsSpace` applies the query-string
 * convention ('+' = ' '); in paths '+' is a literal plus.
 */
export function percentDecode(text: string, plusIsSpace: boolean, errorCode: ErrorCode): Buffer {
  if (!text.includes('%') && !(plusIsSpace && text.includes('+'))) return Buffer.from(text, 'latin1');
  const out = Buffer.allocUnsafe(text.length);
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === '%') {
      const high = HEX[text[i + 1] ?? ''];
      const low = HEX[text[i + 2] ?? ''];
      if (high === undefined || low === undefined) {
        throw new ImpulseError(errorCode, `invalid percent-encoding at character ${i} of ${JSON.stringify(text.slice(0, 64))}`);
      }
      out[length++] = high * 16 + low;
      i += 2;
    } else if (char === '+' && plusIsSpace) {
      out[length++] = 0x20;
    } else {
      out[length++] = text.charCodeAt(i) & 0xff;
    }
  }
  return out.subarray(0, length);
}

/** Percent-encodes bytes for a path segment (everything but unreserved characters). */
export function percentEncode(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) {
    const unreserved =
      (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e;
    out += unreserved ? String.fromCharCode(byte) : '%' + (byte < 16 ? '0' : '') + byte.toString(16).toUpperCase();
  }
  return out;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (RFC 4648 §4, padded). Node's decoder silently skips bad characters, so check first. */
export function decodeBase64(text: string, errorCode: ErrorCode, what: string): Buffer {
  if (!BASE64.test(text)) throw new ImpulseError(errorCode, `${what} is not valid base64`);
  return Buffer.from(text, 'base64');
}

/** Decodes a wire string in the given encoding. */
export function decodeWire(text: unknown, encoding: WireEncoding, errorCode: ErrorCode, what: string): Buffer {
  if (typeof text !== 'string') throw new ImpulseError(errorCode, `${what} must be a string`);
  return encoding === 'base64' ? decodeBase64(text, errorCode, what) : Buffer.from(text, 'utf8');
}

/**
 * A range result item. In `utf8` mode an item whose key or value is not valid
 * UTF-8 is sent with both fields in base64 and `"encoding": "base64"`, so bytes
 * are never mangled and a page never fails because of one binary entry.
 */
export function encodeItem(key: Buffer, value: Buffer, encoding: WireEncoding): { key: string; value: string; encoding?: 'base64' } {
  if (encoding === 'utf8' && isUtf8(key) && isUtf8(value)) return { key: key.toString('utf8'), value: value.toString('utf8') };
  const item = { key: key.toString('base64'), value: value.toString('base64') };
  return encoding === 'base64' ? item : { ...item, encoding: 'base64' };
}

/** Cursors are opaque to clients: base64url of the last key of the page. */
export function encodeCursor(lastKey: Buffer): string {
  return lastKey.toString('base64url');
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

export function decodeCursor(cursor: string): Buffer {
  if (!BASE64URL.test(cursor) || cursor.length % 4 === 1) throw new ImpulseError('IMPULSE_ERR_RANGE_INVALID', 'cursor is not one this server issued');
  return Buffer.from(cursor, 'base64url');
}

/**
 * How the API writes answers that are not a route's own: the JSON error format
 * (`{"error": {"code", "message", ...details}}`, docs/api.md) and the same
 * answer as raw HTTP/1.1 bytes, for the cases where node:http hands us a bare
 * socket instead of a response object (malformed requests, timeouts before the
 * headers were complete).
 */
import { STATUS_CODES } from 'node:http';
import type { ImpulseError } from '../errors.js';
import { httpStatusOf } from './http-status.js';

export const JSON_TYPE = 'application/json';
export const OCTET_TYPE = 'application/octet-stream';

/** The JSON body of an error answer. */
export function errorJson(error: ImpulseError): string {
  return JSON.stringify(error.toJSON());
}

/**
 * A complete HTTP/1.1 error answer that closes the connection: status line,
 * `Content-Type`, `Content-Length`, `Connection: close`, and the JSON body.
 * For writing straight to a socket; only ever the last bytes we send on it.
 */
export function rawErrorResponse(error: ImpulseError): Buffer {
  const status = httpStatusOf(error.code);
  const body = Buffer.from(errorJson(error), 'utf8');
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    `Content-Type: ${JSON_TYPE}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/**
 * A raw TCP connection to an HTTP server, for tests that need what a real
 * client library hides: several requests in one write (pipelining), half-sent
 * headers, bodies that never come, bytes after the headers, interim
 * `100 Continue` answers. It parses the answers the server sends back
 * (status, headers, `Content-Length` bodies) in order.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  readonly status: number;
  /** Header names lower-cased. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export class RawConnection {
  private received = Buffer.alloc(0);
  private ended = false;
  private closed = false;
  private error: Error | undefined;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', (error) => {
      this.error = error;
      this.wake();
    });
  }

  /** Connects to 127.0.0.1:`port`. `allowHalfOpen` keeps our side open after the server's FIN (like a client that never closes). */
  static open(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Whether the server has sent its FIN. */
  get serverEnded(): boolean {
    return this.ended;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves with the next `count` complete answers (interim 1xx answers included), or rejects after `timeoutMs`. */
  async responses(count: number, timeoutMs = 10_000): Promise<RawResponse[]> {
    await this.until(() => parseResponses(this.received).responses.length >= count, timeoutMs, `${count} answers`);
    const { responses, consumed } = parseResponses(this.received, count);
    this.received = this.received.subarray(consumed);
    return responses;
  }

  /** Resolves once the server has ended or closed the connection; rejects after `timeoutMs`. */
  async serverClosed(timeoutMs = 10_000): Promise<void> {
    await this.until(() => this.ended || this.closed, timeoutMs, 'the server to close the connection');
  }

  /** Every byte received and not yet returned as an answer. */
  get pending(): Buffer {
    return this.received;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (condition()) {
          clearTimeout(timer);
          resolve();
          return true;
        }
        if (this.closed) {
          clearTimeout(timer);
          reject(new Error(`connection closed before ${what}; received ${JSON.stringify(this.received.toString('latin1').slice(0, 300))}${this.error ? ` (${this.error.message})` : ''}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter !== onWake);
        reject(new Error(`timed out waiting for ${what}; received ${JSON.stringify(this.received.toString('latin1').slice(0, 300))}`));
      }, timeoutMs);
      const onWake = (): void => {
        if (check()) this.waiters = this.waiters.filter((waiter) => waiter !== onWake);
      };
      if (!check()) this.waiters.push(onWake);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** Parses complete HTTP/1.1 answers from the start of `bytes` (at most `max`); the body length is `Content-Length`, or none. */
export function parseResponses(bytes: Buffer, max = Number.POSITIVE_INFINITY): { responses: RawResponse[]; consumed: number } {
  const responses: RawResponse[] = [];
  let offset = 0;
  while (responses.length < max) {
    const headEnd = bytes.indexOf('\r\n\r\n', offset, 'latin1');
    if (headEnd === -1) break;
    const lines = bytes.subarray(offset, headEnd).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
    if (!Number.isInteger(status)) throw new Error(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = status < 200 || status === 204 || status === 304 ? 0 : Number(headers['content-length'] ?? 0);
    const bodyStart = headEnd + 4;
    if (bytes.length < bodyStart + length) break;
    responses.push({ status, headers, body: Buffer.from(bytes.subarray(bodyStart, bodyStart + length)) });
    offset = bodyStart + length;
  }
  return { responses, consumed: offset };
}

/** A request in HTTP/1.1 wire form with `Host` and, when a body is given, `Content-Length`. */
export function rawRequest(method: string, target: string, body?: string | Buffer, headers: Record<string, string> = {}): Buffer {
  const bodyBytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  let head = `${method} ${target} HTTP/1.1\r\nHost: test\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  if (bodyBytes !== undefined) head += `Content-Length: ${bodyBytes.length}\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), bodyBytes ?? Buffer.alloc(0)]);
}

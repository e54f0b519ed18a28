/**
 * The TypeScript client for impulse's HTTP API, used by the CLI, the tests and
 * the benchmarks. Keep-alive connections (a bounded pool), a per-request
 * timeout, and every failure as an `ImpulseError`:
 *   - the server's own error (its code and message, e.g. IMPULSE_ERR_KEY_TOO_LARGE),
 *   - IMPULSE_ERR_CLIENT_UNREACHABLE when nothing listens at the endpoint,
 *   - IMPULSE_ERR_CLIENT_TIMEOUT when the server does not answer in time,
 *   - IMPULSE_ERR_CLIENT_PROTOCOL when the answer makes no sense.
 * Keys and values are bytes; strings are taken as UTF-8.
 */
import { Agent, request } from 'node:http';
import { ERROR_CATALOG, type ErrorCode, ImpulseError } from '../errors.js';
import type { ClusterView } from '../protocol/cluster-view.js';
import { percentEncode } from '../protocol/codec.js';

export type Bytes = Uint8Array | string;

export interface ClientOptions {
  /** Base URL, e.g. http://127.0.0.1:7070. */
  readonly endpoint: string;
  /** Per-request timeout, ms. Default 10,000. */
  readonly timeoutMs?: number;
  /** Most concurrent connections. Default 64. */
  readonly connectionsMax?: number;
}

export interface ScanOptions {
  readonly start?: Bytes;
  readonly end?: Bytes;
  readonly prefix?: Bytes;
  readonly limit?: number;
  readonly reverse?: boolean;
  readonly cursor?: string;
}

export interface ScanPage {
  readonly items: Array<{ key: Buffer; value: Buffer }>;
  readonly next: string | null;
}

export type BatchOp = { op: 'put'; key: Bytes; value: Bytes } | { op: 'delete'; key: Bytes };

interface Response {
  readonly status: number;
  readonly body: Buffer;
  readonly contentType: string | undefined;
}

export class ImpulseClient {
  readonly endpoint: URL;
  private readonly agent: Agent;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    try {
      this.endpoint = new URL(options.endpoint);
    } catch {
      throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `endpoint ${JSON.stringify(options.endpoint)} is not a URL (example: http://127.0.0.1:7070)`);
    }
    if (this.endpoint.protocol !== 'http:') throw new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', `endpoint must be http://, got ${this.endpoint.protocol}`);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.agent = new Agent({ keepAlive: true, maxSockets: options.connectionsMax ?? 64, maxFreeSockets: options.connectionsMax ?? 64 });
  }

  /** The value under `key`, or `undefined` when absent. */
  async get(key: Bytes): Promise<Buffer | undefined> {
    const response = await this.call('GET', keyPath(key));
    if (response.status === 404 && errorCode(response) === 'IMPULSE_ERR_KEY_NOT_FOUND') return undefined;
    this.expect(response, 200);
    return response.body;
  }

  async put(key: Bytes, value: Bytes): Promise<void> {
    this.expect(await this.call('PUT', keyPath(key), toBytes(value)), 204);
  }

  async del(key: Bytes): Promise<void> {
    this.expect(await this.call('DELETE', keyPath(key)), 204);
  }

  /** Atomic batch; keys and values travel base64-encoded. */
  async batch(ops: readonly BatchOp[]): Promise<void> {
    const document = {
      encoding: 'base64',
      ops: ops.map((op) =>
        op.op === 'put'
          ? { op: 'put', key: Buffer.from(toBytes(op.key)).toString('base64'), value: Buffer.from(toBytes(op.value)).toString('base64') }
          : { op: 'delete', key: Buffer.from(toBytes(op.key)).toString('base64') },
      ),
    };
    this.expect(await this.call('POST', '/kv/batch', Buffer.from(JSON.stringify(document))), 204);
  }

  /** One page of a range query; pass `next` back as `cursor` for the following page. */
  async scan(options: ScanOptions = {}): Promise<ScanPage> {
    const params: string[] = ['encoding=base64'];
    for (const name of ['start', 'end', 'prefix'] as const) {
      const bound = options[name];
      if (bound !== undefined) params.push(`${name}=${percentEncode(toBytes(bound))}`);
    }
    if (options.limit !== undefined) params.push(`limit=${options.limit}`);
    if (options.reverse) params.push('reverse=true');
    if (options.cursor !== undefined) params.push(`cursor=${encodeURIComponent(options.cursor)}`);
    const response = await this.call('GET', `/kv?${params.join('&')}`);
    this.expect(response, 200);
    const page = this.json(response) as { items?: Array<{ key: string; value: string }>; next?: string | null };
    if (!Array.isArray(page.items)) throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', 'range response has no items array');
    return {
      items: page.items.map((item) => ({ key: Buffer.from(item.key, 'base64'), value: Buffer.from(item.value, 'base64') })),
      next: page.next ?? null,
    };
  }

  /** Every entry of a range, page after page, at most `entriesMax` (default 1,000,000). */
  async *scanAll(options: Omit<ScanOptions, 'cursor'> = {}, entriesMax = 1_000_000): AsyncGenerator<{ key: Buffer; value: Buffer }> {
    let cursor: string | undefined;
    let seen = 0;
    do {
      const page = await this.scan({ ...options, ...(cursor !== undefined ? { cursor } : {}) });
      for (const item of page.items) {
        if (seen++ >= entriesMax) return;
        yield item;
      }
      cursor = page.next ?? undefined;
    } while (cursor !== undefined);
  }

  async status(): Promise<Record<string, unknown>> {
    const response = await this.call('GET', '/status');
    this.expect(response, 200);
    return this.json(response) as Record<string, unknown>;
  }

  /** The cluster as the node at the endpoint sees it (`GET /cluster`). */
  async cluster(): Promise<ClusterView> {
    const response = await this.call('GET', '/cluster');
    this.expect(response, 200);
    const view = this.json(response) as ClusterView;
    if (typeof view.clusterId !== 'string' || !Array.isArray(view.members)) throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', '/cluster answer is not a cluster view');
    return view;
  }

  async health(): Promise<boolean> {
    const response = await this.call('GET', '/health');
    return response.status === 200;
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private expect(response: Response, status: number): void {
    if (response.status === status) return;
    const code = errorCode(response);
    if (code !== undefined) {
      const message = (this.json(response) as { error: { message: string } }).error.message;
      throw new ImpulseError(code, message);
    }
    throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', `unexpected HTTP ${response.status} from ${this.endpoint.origin}`);
  }

  private json(response: Response): unknown {
    try {
      return JSON.parse(response.body.toString('utf8'));
    } catch {
      throw new ImpulseError('IMPULSE_ERR_CLIENT_PROTOCOL', `HTTP ${response.status} from ${this.endpoint.origin} is not JSON`);
    }
  }

  private call(method: string, path: string, body?: Uint8Array): Promise<Response> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.agent,
          hostname: this.endpoint.hostname,
          port: this.endpoint.port || 80,
          method,
          path,
          headers: body !== undefined ? { 'content-length': body.byteLength, 'content-type': 'application/octet-stream' } : {},
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), contentType: res.headers['content-type'] }));
          res.on('error', (error) => reject(this.transportError(error)));
        },
      );
      req.on('timeout', () => req.destroy(new ImpulseError('IMPULSE_ERR_CLIENT_TIMEOUT', `${this.endpoint.origin} did not answer ${method} within ${this.timeoutMs} ms`)));
      req.on('error', (error) => reject(this.transportError(error)));
      req.end(body);
    });
  }

  private transportError(error: Error): ImpulseError {
    if (error instanceof ImpulseError) return error;
    const code = (error as { code?: string }).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'EADDRNOTAVAIL') {
      return new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE', `cannot connect to ${this.endpoint.origin} (${code}); is the server running?`, { cause: error });
    }
    return new ImpulseError('IMPULSE_ERR_CLIENT_UNREACHABLE', `connection to ${this.endpoint.origin} failed: ${error.message}`, { cause: error });
  }
}

function toBytes(value: Bytes): Uint8Array {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

function keyPath(key: Bytes): string {
  return `/kv/${percentEncode(toBytes(key))}`;
}

function errorCode(response: Response): ErrorCode | undefined {
  if (!response.contentType?.startsWith('application/json')) return undefined;
  try {
    const code = (JSON.parse(response.body.toString('utf8')) as { error?: { code?: string } }).error?.code;
    return code !== undefined && Object.hasOwn(ERROR_CATALOG, code) ? (code as ErrorCode) : undefined;
  } catch {
    return undefined;
  }
}

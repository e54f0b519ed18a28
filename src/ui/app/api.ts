/**
 * The dashboard's calls to its node's HTTP API (docs/api.md): same origin, a
 * timeout on every call, and every failure as one `ApiFailure` with the
 * catalog's code (or NETWORK / TIMEOUT when no answer came).
 */

/** A request that did not succeed: `status` 0 when nothing answered. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface CallOptions {
  readonly method?: string;
  readonly body?: BodyInit;
  readonly headers?: Record<string, string>;
  /** Default 4,000 ms: the poll runs every second, and a member that hangs must not stall it for long. */
  readonly timeoutMs?: number;
}

/** Performs the call; resolves with the response when its status is 2xx (or 304), else rejects with an ApiFailure. */
export async function call(path: string, options: CallOptions = {}): Promise<Response> {
  const timeoutMs = options.timeoutMs ?? 4000;
  let response: Response;
  try {
    response = await fetch(path, {
      method: options.method ?? 'GET',
      cache: 'no-store',
      signal: AbortSignal.timeout(timeoutMs),
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.headers !== undefined ? { headers: options.headers } : {}),
    });
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
    throw new ApiFailure(0, timedOut ? 'TIMEOUT' : 'NETWORK', timedOut ? `no answer within ${timeoutMs} ms` : 'the node does not answer');
  }
  if (response.ok || response.status === 304) return response;
  let code = `HTTP_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  throw new ApiFailure(response.status, code, message);
}

export async function getJson<T>(path: string, timeoutMs?: number): Promise<T> {
  const response = await call(path, timeoutMs !== undefined ? { timeoutMs } : {});
  return (await response.json()) as T;
}

/** The message of any failure, for the page. */
export function describe(error: unknown): string {
  if (error instanceof ApiFailure) return error.code.startsWith('IMPULSE_ERR_') ? `${error.message} (${error.code})` : error.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * The dashboard's calls to its node's HTTP API (docs/api.md): same origin, a
 * timeout on every call, and every failure as one `ApiFailure` with the
 * catalog's code (or NETWORK / TIMEOUT when no answer came).
 *
 * Tokens: on a node with a token file, the operator enters a token once
 * (login.ts); it is kept in this tab's sessionStorage (gone when the tab
 * closes, never shared with other tabs or sites) and sent with every call as
 * `Authorization: Bearer`, never in a URL. A 401 tells the listeners of
 * `onAuthRequired` (the page then asks for a token).
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

const TOKEN_KEY = 'impulse.token';
const authListeners = new Set<(failure: ApiFailure) => void>();

/** The token entered in this tab, or null. */
export function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: the page works without a token, and asks again after a reload
  }
}

/** Keeps `token` for this tab's calls (null forgets it). */
export function storeToken(token: string | null): void {
  try {
    if (token === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage disabled: nothing to keep it in
  }
}

/** Calls `listener` on every 401 (no token, or one the node refuses); returns the unsubscribe function. */
export function onAuthRequired(listener: (failure: ApiFailure) => void): () => void {
  authListeners.add(listener);
  return () => authListeners.delete(listener);
}

/** Performs the call; resolves with the response when its status is 2xx (or 304), else rejects with an ApiFailure. */
export async function call(path: string, options: CallOptions = {}): Promise<Response> {
  const timeoutMs = options.timeoutMs ?? 4000;
  const token = storedToken();
  const headers = { ...(options.headers ?? {}), ...(token !== null ? { authorization: `Bearer ${token}` } : {}) };
  let response: Response;
  try {
    response = await fetch(path, {
      method: options.method ?? 'GET',
      cache: 'no-store',
      signal: AbortSignal.timeout(timeoutMs),
      headers,
      ...(options.body !== undefined ? { body: options.body } : {}),
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
  const failure = new ApiFailure(response.status, code, message);
  if (response.status === 401) for (const listener of authListeners) listener(failure);
  throw failure;
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

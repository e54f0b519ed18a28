/**
 * The request handler of the bare reference servers: node:http holding a Map,
 * answering PUT/GET/DELETE /kv/{key} with the least work Node allows. No
 * validation, no metrics, no engine. Used by bench/ceiling-server.ts (its own
 * process) and bench/seq-latency.ts (in process).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface BareKvOptions {
  /**
   * Answer as ImpulseClient needs: writes and present reads with a revision
   * ETag, a missing key with a JSON 404 (how the client tells "absent" from an
   * error). Default false: the least work, as the ceiling has always done.
   */
  readonly impulseClient?: boolean;
}

export function bareKvHandler(store: Map<string, Buffer>, options: BareKvOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  let revision = 0;
  const written = (res: ServerResponse): void => {
    res.statusCode = 204;
    if (options.impulseClient === true) res.setHeader('etag', `"${++revision}"`);
    res.end();
  };
  return (req, res) => {
    const key = (req.url ?? '').slice(4);
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        store.set(key, Buffer.concat(chunks));
        written(res);
      });
    } else if (req.method === 'GET') {
      const value = store.get(key);
      if (value === undefined) {
        res.statusCode = 404;
        if (options.impulseClient === true) res.setHeader('content-type', 'application/json');
        res.end('{"error":{"code":"IMPULSE_ERR_KEY_NOT_FOUND"}}');
      } else {
        if (options.impulseClient === true) res.setHeader('etag', `"${revision}"`);
        res.setHeader('content-type', 'application/octet-stream');
        res.end(value);
      }
    } else {
      store.delete(key);
      written(res);
    }
  };
}

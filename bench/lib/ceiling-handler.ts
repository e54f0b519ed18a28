/**
 * The ceiling's request handler: PUT/GET/DELETE /kv/{key} on a Map with the
 * least work node:http allows (no validation, no metrics, no engine). Served
 * over sockets by bench/ceiling-server.ts and fed in process by
 * bench/http-path.ts, so both measure the same code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export function ceilingHandler(store: Map<string, Buffer>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const key = (req.url ?? '').slice(4);
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        store.set(key, Buffer.concat(chunks));
        res.statusCode = 204;
        res.end();
      });
    } else if (req.method === 'GET') {
      const value = store.get(key);
      if (value === undefined) {
        res.statusCode = 404;
        res.end('{"error":{"code":"IMPULSE_ERR_KEY_NOT_FOUND"}}');
      } else {
        res.setHeader('content-type', 'application/octet-stream');
        res.end(value);
      }
    } else {
      store.delete(key);
      res.statusCode = 204;
      res.end();
    }
  };
}

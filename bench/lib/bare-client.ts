/**
 * The least client node:http allows: one keep-alive socket, one request at a
 * time, the answer read and dropped. The reference beside ImpulseClient in the
 * sequential benchmarks (bench/sequential.ts, bench/seq-latency.ts).
 */
import { Agent, request } from 'node:http';

export interface BareClientHooks {
  /** Called just before the request is handed to node:http. */
  readonly sent?: () => void;
  /** Called when the answer's head has been parsed. */
  readonly response?: () => void;
  /** Called when the answer has been read in full. */
  readonly done?: () => void;
}

export interface BareClient {
  /** Sends `method` on /kv/{key} (PUT with `body`) and resolves once the answer is read; rejects on a transport error. */
  send(method: 'PUT' | 'GET' | 'DELETE', key: string, body?: Buffer): Promise<void>;
  close(): void;
}

export function bareClient(port: number, hooks: BareClientHooks = {}): BareClient {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (method: 'PUT' | 'GET' | 'DELETE', key: string, body?: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      hooks.sent?.();
      const headers = body === undefined ? {} : { 'content-length': body.length };
      const req = request({ host: '127.0.0.1', port, method, path: `/kv/${key}`, agent, headers }, (res) => {
        hooks.response?.();
        res.on('data', () => {});
        res.on('end', () => {
          hooks.done?.();
          resolve();
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  return { send, close: () => agent.destroy() };
}

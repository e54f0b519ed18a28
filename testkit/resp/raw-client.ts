/**
 * RESP test helpers: a raw connection that collects every byte the server
 * sends, a multibulk encoder, and the message of an error reply (ioredis).
 */
import { type Socket, connect } from 'node:net';

/** A raw connection that collects every byte the server sends. */
export class RawClient {
  readonly socket: Socket;
  private received = Buffer.alloc(0);
  readonly closed: Promise<void>;

  /** `socket`: an already-connecting socket (a TLS one, say); default a plain TCP connection to `port`. */
  constructor(port: number, socket?: Socket) {
    this.socket = socket ?? connect(port, '127.0.0.1');
    this.socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
    });
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Waits until the received bytes are at least `bytes` long (or the socket closed), and returns them as latin1 text. */
  async until(predicate: (text: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.received.toString('latin1'))) {
      if (Date.now() > deadline) throw new Error(`timed out; received ${JSON.stringify(this.received.toString('latin1').slice(0, 500))}`);
      if (this.socket.destroyed) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return this.received.toString('latin1');
  }
}

export function multibulk(...args: (string | Buffer)[]): Buffer {
  const parts = args.map((arg) => (typeof arg === 'string' ? Buffer.from(arg) : arg));
  return Buffer.concat([Buffer.from(`*${parts.length}\r\n`), ...parts.flatMap((part) => [Buffer.from(`$${part.length}\r\n`), part, Buffer.from('\r\n')])]);
}

export async function replyError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected an error reply');
}


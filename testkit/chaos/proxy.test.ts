import assert from 'node:assert/strict';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SeededRandom } from '../../src/util/random.js';
import { LinkProxy } from './proxy.js';

/** A server that records every byte each connection sends it and echoes "pong" frames back. */
class Sink {
  readonly received: Buffer[] = [];
  readonly sockets: Socket[] = [];
  private server: Server | undefined;
  port = 0;
  async start(): Promise<void> {
    this.server = createServer((socket) => {
      this.sockets.push(socket);
      socket.on('data', (chunk: Buffer) => this.received.push(chunk));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as { port: number }).port;
  }
  bytes(): Buffer {
    return Buffer.concat(this.received);
  }
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

function frame(type: number, payload: string): Buffer {
  const body = Buffer.from(payload);
  const bytes = Buffer.alloc(5 + body.length);
  bytes.writeUInt32BE(1 + body.length, 0);
  bytes[4] = type;
  body.copy(bytes, 5);
  return bytes;
}

const PREAMBLE = Buffer.from([0x49, 0x4d, 0x50, 0x54, 0, 1]);
const HELLO = frame(1, 'hello');
const messages = (count: number): Buffer[] => Array.from({ length: count }, (_, i) => frame(4, `m${String(i).padStart(3, '0')}`));

async function eventually(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The frames (after preamble) in `bytes`, as their payload strings. */
function framesIn(bytes: Buffer): string[] {
  const out: string[] = [];
  if (bytes.length < PREAMBLE.length) return out;
  let at = PREAMBLE.length;
  while (at + 4 <= bytes.length) {
    const length = bytes.readUInt32BE(at);
    out.push(bytes.subarray(at + 5, at + 4 + length).toString());
    at += 4 + length;
  }
  assert.equal(at, bytes.length, 'no partial or cut frame');
  return out;
}

describe('LinkProxy', () => {
  const sink = new Sink();
  before(() => sink.start());
  after(() => sink.close());

  async function through(proxy: LinkProxy, chunks: Buffer[]): Promise<Socket> {
    const socket = connect({ host: '127.0.0.1', port: proxy.address.port });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    for (const chunk of chunks) socket.write(chunk);
    return socket;
  }

  it('passes a healthy link unchanged, even when frames arrive split across reads', async () => {
    sink.received.length = 0;
    const proxy = new LinkProxy({ target: { host: '127.0.0.1', port: sink.port }, random: new SeededRandom(1) });
    await proxy.start();
    const all = Buffer.concat([PREAMBLE, HELLO, ...messages(50)]);
    const pieces = [all.subarray(0, 3), all.subarray(3, 17), all.subarray(17, 200), all.subarray(200)];
    const socket = await through(proxy, pieces);
    await eventually(() => sink.bytes().length === all.length, 'all bytes');
    assert.ok(sink.bytes().equals(all));
    socket.destroy();
    await proxy.close();
  });

  it('drops, duplicates and reorders whole message frames only, never the handshake', async () => {
    for (const [faults, check] of [
      [{ lossRate: 1 }, (frames: string[]) => assert.deepEqual(frames, ['hello', 'ping'])],
      [{ duplicateRate: 1 }, (frames: string[]) => assert.deepEqual(frames, ['hello', 'm000', 'm000', 'm001', 'm001', 'ping'])],
      [{ reorderRate: 0.5 }, (frames: string[]) => assert.deepEqual([...frames].sort(), ['hello', 'm000', 'm001', 'm002', 'm003', 'm004', 'm005', 'm006', 'm007', 'ping'].sort())],
    ] as const) {
      sink.received.length = 0;
      const proxy = new LinkProxy({ target: { host: '127.0.0.1', port: sink.port }, random: new SeededRandom(7) });
      await proxy.start();
      proxy.set(faults);
      const count = 'reorderRate' in faults ? 8 : 2;
      const socket = await through(proxy, [PREAMBLE, HELLO, ...messages(count), frame(5, 'ping')]);
      await new Promise((resolve) => setTimeout(resolve, 150));
      const frames = framesIn(sink.bytes());
      check(frames);
      if ('reorderRate' in faults) assert.notDeepEqual(frames, [...frames].sort(), 'something was reordered with this seed');
      socket.destroy();
      await proxy.close();
    }
  });

  it('a hold block forwards nothing (not even the connection) until it lifts, then delivers everything in order', async () => {
    sink.received.length = 0;
    const connectionsBefore = sink.sockets.length;
    const proxy = new LinkProxy({ target: { host: '127.0.0.1', port: sink.port }, random: new SeededRandom(2) });
    await proxy.start();
    proxy.set({ blocked: true });
    const socket = await through(proxy, [PREAMBLE, HELLO, ...messages(5)]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(sink.bytes().length, 0);
    assert.equal(sink.sockets.length, connectionsBefore, 'the peer saw no connection');
    proxy.heal();
    await eventually(() => sink.bytes().length === Buffer.concat([PREAMBLE, HELLO, ...messages(5)]).length, 'the held frames');
    assert.deepEqual(framesIn(sink.bytes()), ['hello', 'm000', 'm001', 'm002', 'm003', 'm004']);
    socket.destroy();
    await proxy.close();
  });

  it('a reset block drops connections now and refuses new ones', async () => {
    const proxy = new LinkProxy({ target: { host: '127.0.0.1', port: sink.port }, random: new SeededRandom(3) });
    await proxy.start();
    const socket = await through(proxy, [PREAMBLE]);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    proxy.set({ blocked: true, blockMode: 'reset' });
    await closed;
    const again = connect({ host: '127.0.0.1', port: proxy.address.port });
    await new Promise<void>((resolve) => {
      again.once('error', () => resolve());
      again.once('close', () => resolve());
    });
    assert.ok(proxy.stats.resets >= 2);
    await proxy.close();
  });

  it('delays frames by at least delayMs without reordering them', async () => {
    sink.received.length = 0;
    const proxy = new LinkProxy({ target: { host: '127.0.0.1', port: sink.port }, random: new SeededRandom(4) });
    await proxy.start();
    proxy.set({ delayMs: 200, jitterMs: 100 });
    const started = Date.now();
    const socket = await through(proxy, [PREAMBLE, HELLO, ...messages(20)]);
    await eventually(() => sink.bytes().length === Buffer.concat([PREAMBLE, HELLO, ...messages(20)]).length, 'delayed frames');
    assert.ok(Date.now() - started >= 190, `arrived after ${Date.now() - started} ms`);
    assert.deepEqual(framesIn(sink.bytes()).slice(1), messages(20).map((_, i) => `m${String(i).padStart(3, '0')}`));
    socket.destroy();
    await proxy.close();
  });
});

describe('LinkProxy with a source sniffer (one proxy in front of a node that many dial)', () => {
  it('tells dialers apart by their first bytes and blocks only the named sources', async () => {
    const sink = new Sink();
    await sink.start();
    const proxy = new LinkProxy({
      target: { host: '127.0.0.1', port: sink.port },
      random: new SeededRandom(5),
      frameAware: false,
      sourceOf: (head) => /^X-From: (\w+)\r\n/m.exec(head.toString('latin1'))?.[1],
    });
    await proxy.start();
    proxy.blockSources(['a']);
    const dial = async (text: string): Promise<Socket> => {
      const socket = connect({ host: '127.0.0.1', port: proxy.address.port });
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.write(text);
      return socket;
    };
    const fromA = await dial('GET / HTTP/1.1\r\nX-From: a\r\n\r\nfrom-a');
    const fromB = await dial('GET / HTTP/1.1\r\nX-From: b\r\n\r\nfrom-b');
    await eventually(() => sink.bytes().toString().includes('from-b'), 'b passes');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(!sink.bytes().toString().includes('from-a'), 'a is held');
    proxy.heal();
    await eventually(() => sink.bytes().toString().includes('from-a'), 'a flows after the heal');
    fromA.destroy();
    fromB.destroy();
    await proxy.close();
    await sink.close();
  });
});

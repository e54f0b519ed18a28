/**
 * The ceiling for the Redis-protocol benchmark (bench/resp.ts): a bare
 * node:net server holding a Map, answering SET k v, GET k and anything else
 * with +OK/PONG, with the least work Node allows: multibulk requests only, no
 * limits, no validation, no metrics, no engine; the replies to one read leave
 * in one write. What it costs per request is what Node's sockets and streams
 * cost; impulse's figure beside it is Node plus impulse. Not a server to use.
 * Prints "listening <port>" on stdout.
 *
 *   node dist/bench/resp-ceiling-server.js [--port 0] [--read-path stream|onread] [--reply-at once|turn]
 *
 * `--reply-at turn` writes the replies at the end of the event loop's turn
 * (one setImmediate for all connections), as impulse's SET replies leave
 * (after the put coalescer's commit), instead of inside the `data` event, as
 * impulse's GET replies do: the A/B for whether that timing, not the
 * command, is what makes a SET cheaper than a GET for the kernel and Node.
 *
 * `--read-path stream` (the default) reads through `data` events, as
 * src/resp does. `--read-path onread` reads into one reused buffer through
 * net.Socket's `onread` option, which skips the readable stream and the
 * Buffer made per read. Node (20 and 24) has no documented way to get that
 * option on a server's accepted sockets (net.Server builds them without it),
 * so this path re-wraps the accepted socket's internal `_handle` in a new
 * Socket: an experiment, to measure what the stream layer's read side costs,
 * not something src/resp may rely on.
 */
import { type AddressInfo, Socket as NetSocket, type Socket, createServer } from 'node:net';
import { flag } from './report.js';

const store = new Map<string, Buffer>();
const OK = Buffer.from('+OK\r\n');
const PONG = Buffer.from('+PONG\r\n');
const NIL = Buffer.from('$-1\r\n');

/** One complete multibulk command at `at`: its arguments and where the next starts, or undefined when incomplete. */
function parse(data: Buffer, at: number): { args: Buffer[]; next: number } | undefined {
  let lineEnd = data.indexOf(13, at);
  if (lineEnd === -1 || lineEnd + 1 >= data.length) return undefined;
  const count = Number(data.toString('latin1', at + 1, lineEnd));
  let cursor = lineEnd + 2;
  const args: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    lineEnd = data.indexOf(13, cursor);
    if (lineEnd === -1 || lineEnd + 1 >= data.length) return undefined;
    const length = Number(data.toString('latin1', cursor + 1, lineEnd));
    cursor = lineEnd + 2;
    if (cursor + length + 2 > data.length) return undefined;
    args.push(data.subarray(cursor, cursor + length));
    cursor += length + 2;
  }
  return { args, next: cursor };
}

function answer(args: Buffer[]): Buffer {
  const name = args[0]!.toString('latin1').toLowerCase();
  if (name === 'set') {
    store.set(args[1]!.toString('latin1'), Buffer.from(args[2]!));
    return OK;
  }
  if (name === 'get') {
    const value = store.get(args[1]!.toString('latin1'));
    return value === undefined ? NIL : Buffer.concat([Buffer.from(`$${value.length}\r\n`), value, Buffer.from('\r\n')]);
  }
  return name === 'ping' ? PONG : OK;
}

/** `--reply-at turn`: the replies of this turn of the event loop, written at its end (setImmediate). */
const turnReplies: { socket: Socket; reply: Buffer }[] = [];

function writeTurn(): void {
  for (const { socket, reply } of turnReplies) socket.write(reply);
  turnReplies.length = 0;
}

/** Answers the complete commands in `data` with one write (now, or at the turn's end); returns where the unparsed rest starts. */
function answerAll(socket: Socket, data: Buffer): number {
  const replies: Buffer[] = [];
  let at = 0;
  for (let command = parse(data, at); command !== undefined; command = parse(data, at)) {
    replies.push(answer(command.args));
    at = command.next;
  }
  if (replies.length === 0) return at;
  const reply = replies.length === 1 ? replies[0]! : Buffer.concat(replies);
  if (!replyAtTurnEnd) socket.write(reply);
  else if (turnReplies.push({ socket, reply }) === 1) setImmediate(writeTurn);
  return at;
}

function serveStream(socket: Socket): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    const data = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    pending = data.subarray(answerAll(socket, data));
  });
  socket.on('error', () => socket.destroy());
}

/** The internal field the experiment re-wraps; not a documented API (see the file comment). */
interface WithHandle {
  readonly _handle: unknown;
}

const readBuffer = Buffer.allocUnsafe(64 * 1024);

function serveOnread(accepted: Socket): void {
  let pending: Buffer = Buffer.alloc(0);
  // `handle` is the Socket constructor's internal option (net.Server uses it); `onread` is documented
  // for net.connect and the constructor but missing from @types/node's constructor options.
  const options = {
    handle: (accepted as unknown as WithHandle)._handle,
    readable: true,
    writable: true,
    onread: {
      buffer: readBuffer,
      callback: (bytes: number, buffer: Uint8Array): void => {
        const read = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
        // The reused buffer is overwritten by the next read: a partial command's bytes are copied out.
        const data = pending.length === 0 ? read : Buffer.concat([pending, read]);
        pending = Buffer.from(data.subarray(answerAll(socket, data)));
      },
    },
  };
  const socket: Socket = new NetSocket(options);
  socket.on('error', () => socket.destroy());
  socket.resume();
}

const readPath = flag('read-path', 'stream');
const replyAtTurnEnd = flag('reply-at', 'once') === 'turn';
if (readPath !== 'stream' && readPath !== 'onread') throw new Error(`--read-path is stream or onread, not ${readPath}`);
// onread: the accepted socket must not start reading before its handle is re-wrapped.
const server = createServer({ noDelay: true, pauseOnConnect: readPath === 'onread' }, readPath === 'onread' ? serveOnread : serveStream);
server.listen(Number(flag('port', '0')), '127.0.0.1', () => console.log(`listening ${(server.address() as AddressInfo).port}`));

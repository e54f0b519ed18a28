/**
 * The ceiling for the Redis-protocol benchmark (bench/resp.ts): a bare
 * node:net server holding a Map, answering SET k v, GET k and anything else
 * with +OK/PONG, with the least work Node allows: multibulk requests only, no
 * limits, no validation, no metrics, no engine; the replies to one read leave
 * in one write. What it costs per request is what Node's sockets and streams
 * cost; impulse's figure beside it is Node plus impulse. Not a server to use.
 * Prints "listening <port>" on stdout.
 *
 *   node dist/bench/resp-ceiling-server.js [--port 0]
 */
import { type AddressInfo, type Socket, createServer } from 'node:net';
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

function serve(socket: Socket): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    const data = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const replies: Buffer[] = [];
    let at = 0;
    for (let command = parse(data, at); command !== undefined; command = parse(data, at)) {
      replies.push(answer(command.args));
      at = command.next;
    }
    pending = data.subarray(at);
    if (replies.length > 0) socket.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies));
  });
  socket.on('error', () => socket.destroy());
}

const server = createServer({ noDelay: true }, serve);
server.listen(Number(flag('port', '0')), '127.0.0.1', () => console.log(`listening ${(server.address() as AddressInfo).port}`));

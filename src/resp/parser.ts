/**
 * The request parser of the Redis protocol: turns the bytes a client sends
 * into commands (arrays of byte strings), one at a time, in order.
 *
 * Two request forms, as Redis reads them:
 *   - multibulk: `*<n>\r\n` then n times `$<len>\r\n<len bytes>\r\n` (what
 *     every client library and redis-cli send);
 *   - inline: one line of space-separated words, with "..." and '...' quoting
 *     (what a person types into telnet or `nc`).
 *
 * Use: `feed(chunk)` after each socket read, then call `next()` until it
 * returns undefined (needs more bytes). The caller decides how many commands
 * to take (backpressure): bytes not yet parsed stay here, so a caller that
 * stops calling `next()` must also stop feeding (pause the socket).
 *
 * Bounds (memory one connection can pin): at most one partial command, whose
 * stored arguments total at most `commandBytesMax`; an argument longer than
 * `argBytesMax` is read and DISCARDED (never stored), and so is every argument
 * once the command passed `commandBytesMax`: the command then comes out with
 * `tooLargeBytes` set and is answered with an error, the connection stays
 * usable. Malformed framing is a `ProtocolError` in Redis's own wording; after
 * one the stream cannot be resynchronized, so the caller answers and closes.
 */

/** What a connection may hold for one request. */
export interface ParserLimits {
  /** Most arguments (command name included) in one multibulk. Redis: 1024 * 1024. */
  readonly argsMax: number;
  /** Longest argument that is stored; longer ones are skipped and the command refused. */
  readonly argBytesMax: number;
  /** Most argument bytes stored for one command; beyond, the rest is skipped and the command refused. */
  readonly commandBytesMax: number;
  /** Longest inline command line (and header line), bytes. Redis: 64 KiB. */
  readonly inlineBytesMax: number;
  /** Longest bulk the protocol accepts at all (Redis's proto-max-bulk-len, 512 MiB); beyond it a protocol error. */
  readonly bulkBytesProtocolMax: number;
}

export interface ParsedCommand {
  /**
   * The arguments; `args[0]` is the command name. Incomplete when
   * `tooLargeBytes` is set. Mostly views of the bytes read, not copies (as
   * redis-parser returns them): one that is kept past the command copies it
   * (the key-value layer copies keys and values into its own records).
   */
  readonly args: Buffer[];
  /** Set when an argument or the whole command was over the limits: the argument bytes the command declared. */
  readonly tooLargeBytes?: number;
}

/** Framing the parser cannot read past; `message` is Redis's wording, without the leading "ERR ". */
export class ProtocolError {
  constructor(readonly message: string) {}
}

const CR = 0x0d;
const LF = 0x0a;
const EMPTY = Buffer.alloc(0);

export class RequestParser {
  private data: Buffer = EMPTY;
  private pos = 0;
  /** The multibulk being read: arguments so far and how many are still to come. */
  private args: Buffer[] | undefined;
  private argsRemaining = 0;
  /** Argument bytes stored for the partial command, and declared by it (skipped ones included). */
  private commandBytes = 0;
  private declaredBytes = 0;
  private tooLarge = false;
  /** A bulk whose bytes arrive over several reads: its buffer (undefined when skipped), length and progress. */
  private bulk: Buffer | undefined;
  private bulkLength = -1;
  private bulkFilled = 0;
  private failed: ProtocolError | undefined;

  /** Limits to apply from the next command on (`setLimits`). */
  private nextLimits: ParserLimits | undefined;

  constructor(private limits: ParserLimits) {}

  /**
   * Replaces the limits from the next command that starts (one being read
   * keeps the limits it started with). A connection that authenticates gets
   * the full limits this way (src/resp/access.ts).
   */
  setLimits(limits: ParserLimits): void {
    this.nextLimits = limits === this.limits ? undefined : limits;
  }

  /** Bytes received and not yet returned as commands (buffered input and the partial command). */
  get bufferedBytes(): number {
    return this.data.length - this.pos + this.commandBytes + (this.bulk?.length ?? 0);
  }

  /** Adds a chunk read from the socket. */
  feed(chunk: Buffer): void {
    if (this.failed !== undefined) return;
    // Usually the previous chunk was consumed to the end; a rest is a partial header line (short).
    this.data = this.pos >= this.data.length ? chunk : Buffer.concat([this.data.subarray(this.pos), chunk]);
    this.pos = 0;
  }

  /** The next complete command, undefined when more bytes are needed, or the protocol error that ends the stream. */
  next(): ParsedCommand | ProtocolError | undefined {
    if (this.failed !== undefined) return this.failed;
    const result = this.parse();
    if (result instanceof ProtocolError) {
      this.failed = result;
      this.data = EMPTY;
      this.pos = 0;
      this.args = undefined;
      this.bulk = undefined;
    }
    return result;
  }

  private parse(): ParsedCommand | ProtocolError | undefined {
    for (;;) {
      if (this.bulkLength >= 0) {
        const done = this.continueBulk();
        if (done !== true) return done;
      } else if (this.args === undefined) {
        if (this.nextLimits !== undefined) {
          this.limits = this.nextLimits;
          this.nextLimits = undefined;
        }
        if (this.pos >= this.data.length) return undefined;
        if (this.data[this.pos] === 0x2a /* '*' */) {
          const whole = this.whole();
          if (whole !== undefined) return whole;
        } else {
          const inline = this.inline();
          if (inline === null) continue; // an empty line is skipped, as Redis does
          return inline;
        }
        const count = this.headerNumber('mbulk');
        if (typeof count !== 'number') return count;
        if (count > this.limits.argsMax) return new ProtocolError('Protocol error: invalid multibulk length');
        if (count <= 0) continue; // `*0` and `*-1`: nothing to run, as in Redis
        this.args = [];
        this.argsRemaining = count;
        this.commandBytes = 0;
        this.declaredBytes = 0;
        this.tooLarge = false;
      } else {
        if (this.pos >= this.data.length) return undefined;
        const marker = this.data[this.pos]!;
        if (marker !== 0x24 /* '$' */) return new ProtocolError(`Protocol error: expected '$', got '${String.fromCharCode(marker)}'`);
        const length = this.headerNumber('bulk');
        if (typeof length !== 'number') return length;
        if (length < 0 || length > this.limits.bulkBytesProtocolMax) return new ProtocolError('Protocol error: invalid bulk length');
        this.startBulk(length);
      }
      if (this.args !== undefined && this.argsRemaining === 0) return this.finishCommand();
    }
  }

  /**
   * The common case in one pass: a whole multibulk of at most 99 arguments,
   * none over the limits, already in `data`. Undefined when it is anything
   * else (incomplete, large, malformed): the incremental path then reads it
   * and says what is wrong.
   */
  private whole(): ParsedCommand | undefined {
    const { data } = this;
    let at = this.pos + 1;
    let count = 0;
    for (; at < data.length && at - this.pos <= 2 && data[at]! >= 0x30 && data[at]! <= 0x39; at++) count = count * 10 + data[at]! - 0x30;
    if (count < 1 || count > this.limits.argsMax || data[at] !== CR || data[at + 1] !== LF) return undefined;
    at += 2;
    const args: Buffer[] = new Array<Buffer>(count);
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      if (data[at] !== 0x24 /* '$' */) return undefined;
      const digitsFrom = ++at;
      let length = 0;
      for (; at < data.length && at - digitsFrom < 10 && data[at]! >= 0x30 && data[at]! <= 0x39; at++) length = length * 10 + data[at]! - 0x30;
      if (at === digitsFrom || data[at] !== CR || data[at + 1] !== LF) return undefined;
      at += 2;
      if (length > this.limits.argBytesMax || at + length + 2 > data.length || data[at + length] !== CR || data[at + length + 1] !== LF) return undefined;
      args[i] = data.subarray(at, at + length);
      bytes += length;
      at += length + 2;
    }
    if (bytes > this.limits.commandBytesMax) return undefined;
    this.pos = at;
    return { args };
  }

  /** Parses `*<n>\r\n` or `$<n>\r\n` at `pos`; undefined when the line is not complete yet. */
  private headerNumber(kind: 'mbulk' | 'bulk'): number | ProtocolError | undefined {
    const { data } = this;
    const end = data.indexOf(LF, this.pos + 1);
    if (end === -1) {
      if (data.length - this.pos > this.limits.inlineBytesMax) return new ProtocolError(`Protocol error: too big ${kind} count string`);
      return undefined;
    }
    const value = parseDecimal(data, this.pos + 1, end - 1);
    if (data[end - 1] !== CR || value === undefined) return new ProtocolError(`Protocol error: invalid ${kind === 'mbulk' ? 'multibulk' : 'bulk'} length`);
    this.pos = end + 1;
    return value;
  }

  private startBulk(length: number): void {
    this.declaredBytes += length;
    this.commandBytes += length;
    const skip = length > this.limits.argBytesMax || this.commandBytes > this.limits.commandBytesMax || this.tooLarge;
    if (skip) {
      this.tooLarge = true;
      this.commandBytes -= length; // nothing of it is stored
      this.bulk = undefined;
    } else {
      const available = this.data.length - this.pos;
      if (available >= length + 2 && this.data[this.pos + length] === CR && this.data[this.pos + length + 1] === LF) {
        this.args!.push(this.data.subarray(this.pos, this.pos + length));
        this.pos += length + 2;
        this.argsRemaining--;
        return;
      }
      this.bulk = Buffer.allocUnsafe(length);
    }
    this.bulkLength = length;
    this.bulkFilled = 0;
  }

  /** Moves bytes of the current bulk (and its CRLF) out of `data`; true once it is complete. */
  private continueBulk(): true | ProtocolError | undefined {
    const want = this.bulkLength + 2 - this.bulkFilled;
    const take = Math.min(want, this.data.length - this.pos);
    if (this.bulk !== undefined) {
      const payloadTake = Math.max(0, Math.min(take, this.bulkLength - this.bulkFilled));
      this.data.copy(this.bulk, this.bulkFilled, this.pos, this.pos + payloadTake);
    }
    // The CRLF after the payload may straddle reads: check each of its bytes as it passes.
    for (let i = 0; i < take; i++) {
      const at = this.bulkFilled + i;
      if (at === this.bulkLength && this.data[this.pos + i] !== CR) return new ProtocolError('Protocol error: invalid bulk format');
      if (at === this.bulkLength + 1 && this.data[this.pos + i] !== LF) return new ProtocolError('Protocol error: invalid bulk format');
    }
    this.pos += take;
    this.bulkFilled += take;
    if (take < want) return undefined;
    if (this.bulk !== undefined) this.args!.push(this.bulk);
    this.bulk = undefined;
    this.bulkLength = -1;
    this.argsRemaining--;
    return true;
  }

  private finishCommand(): ParsedCommand {
    const args = this.args!;
    const command: ParsedCommand = this.tooLarge ? { args, tooLargeBytes: this.declaredBytes } : { args };
    this.args = undefined;
    this.commandBytes = 0;
    this.tooLarge = false;
    return command;
  }

  /** One inline command line (up to LF); undefined while incomplete, null for an empty line. */
  private inline(): ParsedCommand | ProtocolError | undefined | null {
    const end = this.data.indexOf(LF, this.pos);
    if (end === -1) {
      if (this.data.length - this.pos > this.limits.inlineBytesMax) return new ProtocolError('Protocol error: too big inline request');
      return undefined;
    }
    if (end - this.pos > this.limits.inlineBytesMax) return new ProtocolError('Protocol error: too big inline request');
    const lineEnd = end > this.pos && this.data[end - 1] === CR ? end - 1 : end;
    const words = splitInline(this.data.subarray(this.pos, lineEnd));
    this.pos = end + 1;
    if (words === undefined) return new ProtocolError('Protocol error: unbalanced quotes in request');
    if (words.length === 0) return null;
    if (words.length > this.limits.argsMax) return new ProtocolError('Protocol error: invalid multibulk length');
    return { args: words };
  }
}

/** A strict decimal integer in data[from, to) (optional leading '-'), or undefined. At most 18 digits. */
function parseDecimal(data: Buffer, from: number, to: number): number | undefined {
  let at = from;
  const negative = data[at] === 0x2d;
  if (negative) at++;
  if (at >= to || to - at > 18) return undefined;
  let value = 0;
  for (; at < to; at++) {
    const digit = data[at]! - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    value = value * 10 + digit;
  }
  return negative ? -value : value;
}

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c]);
const ESCAPES: Readonly<Record<number, number>> = { 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09, 0x62: 0x08, 0x61: 0x07 };

/**
 * Splits an inline line the way Redis's sdssplitargs does: words separated by
 * spaces; "..." with escapes (\n \r \t \b \a \xHH, \ before anything else
 * keeps that character); '...' with only \' escaped. A closing quote must be
 * followed by a space or the end. Undefined when quotes do not balance.
 */
export function splitInline(line: Buffer): Buffer[] | undefined {
  const words: Buffer[] = [];
  let at = 0;
  while (at < line.length) {
    while (at < line.length && SPACE.has(line[at]!)) at++;
    if (at >= line.length) break;
    const word: number[] = [];
    const quote = line[at] === 0x22 || line[at] === 0x27 ? line[at]! : 0;
    if (quote !== 0) at++;
    for (;;) {
      if (at >= line.length) {
        if (quote !== 0) return undefined;
        break;
      }
      const byte = line[at]!;
      if (quote === 0) {
        if (SPACE.has(byte)) break;
        word.push(byte);
        at++;
      } else if (byte === quote) {
        at++;
        if (at < line.length && !SPACE.has(line[at]!)) return undefined;
        break;
      } else if (byte === 0x5c /* \ */ && at + 1 < line.length) {
        at += readEscape(line, at, quote, word);
      } else {
        word.push(byte);
        at++;
      }
    }
    words.push(Buffer.from(word));
  }
  return words;
}

/** Reads the escape at line[at] ('\'), appends its byte to `word`; returns the bytes consumed. */
function readEscape(line: Buffer, at: number, quote: number, word: number[]): number {
  const next = line[at + 1]!;
  if (quote === 0x27) {
    if (next === 0x27) {
      word.push(0x27);
      return 2;
    }
    word.push(0x5c);
    return 1;
  }
  if (next === 0x78 && at + 3 < line.length && isHex(line[at + 2]!) && isHex(line[at + 3]!)) {
    word.push(Number.parseInt(String.fromCharCode(line[at + 2]!, line[at + 3]!), 16));
    return 4;
  }
  word.push(ESCAPES[next] ?? next);
  return 2;
}

function isHex(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

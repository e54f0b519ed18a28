/**
 * One client connection: reads commands, runs them, writes replies in the
 * order the commands came (pipelining), and keeps what it holds bounded.
 *
 * How a command goes through:
 *   1. socket data is fed to the parser; `pump` takes commands from it one
 *      by one while fewer than `pipelineDepthMax` are unanswered and the
 *      socket's unsent output is under `outputBytesHighWater`;
 *   2. each command gets a slot in `pending` (in arrival order) and runs
 *      when its turn comes (below); a synchronous reply fills the slot at
 *      once, an asynchronous one later;
 *   3. `flush` writes the filled slots at the head of `pending`, all in one
 *      corked write, and stops at the first unfilled one: replies never
 *      overtake each other, whatever order the service answers in.
 *
 * Order of effects: a connection's commands take effect in the order sent,
 * as on Redis. Commands flagged `readonly` run concurrently with the
 * readonly commands next to them; every other command (a write, or one that
 * changes the connection's state) waits until everything before it has
 * finished, and everything after it waits for it. So a GET after a SET in one
 * pipeline sees the SET, and pipelined GETs still overlap. Consecutive plain
 * writes (SET k v, MSET) of a pipeline go to the service as one command
 * (`putGroup`): one commit for the run instead of one each; and with the plain
 * writes of other connections in the same turn of the event loop
 * (put-coalescer.ts), which is what batches writes sent without pipelining.
 *
 * Backpressure: while either bound of step 1 is reached the socket is paused,
 * so the client's further commands wait in the kernel and in its own buffers,
 * not here. A client that stops reading its replies keeps the output above
 * the high-water mark; if the kernel takes none of it for `outputStallMs`, or
 * the unsent output passes `outputBytesMax` (a few large replies already in
 * flight), the connection is closed and counted (reason `output_stalled` /
 * `output_buffer_full`).
 *
 * A protocol error is answered (after the replies before it) and closes the
 * connection, as in Redis: the byte stream cannot be resynchronized. A client
 * that half-closes (`printf 'SET a b\r\n' | nc -N`) gets the replies to all it
 * sent, then the end of the stream (Redis would drop them).
 */
import type { Socket } from 'node:net';
// Imported, not the global: the global `performance` is a lazy getter, a visible cost at two reads per command.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { arityFits, type ClientState, type CommandContext, type CommandSpec, type ServerView } from './command.js';
import { validateCommand, type KvOp } from '../kv/command.js';
import { NOAUTH, PRE_AUTH_LIMITS, accessRefusal, mustAuthenticate } from './access.js';
import { OK, errorReply } from './encoder.js';
import { failureReply, unknownCommand, wrongArity } from './errors.js';
import { ProtocolError, type ParsedCommand, type ParserLimits, type RequestParser } from './parser.js';
import { refusedAsBatch } from './put-coalescer.js';

export interface ConnectionLimits {
  /** Commands taken but not yet answered, at most; then reading pauses. */
  readonly pipelineDepthMax: number;
  /** Unsent reply bytes at which reading pauses. */
  readonly outputBytesHighWater: number;
  /** Unsent reply bytes beyond which the connection is closed. */
  readonly outputBytesMax: number;
  /** How long output may stay above the high-water mark with no byte taken by the kernel, ms. */
  readonly outputStallMs: number;
  /** The parser's limits once the connection may run commands (before AUTH, with a token file: access.ts's PRE_AUTH_LIMITS). */
  readonly parserLimits: ParserLimits;
}

/** Replies smaller than this are copied together into one write, up to this many bytes per write. */
const COALESCE_BYTES_MAX = 64 * 1024;

/** How long a connection that sent its last reply waits for the client's FIN, ms. */
const LINGER_MS = 2_000;

export type CloseReason = 'client' | 'quit' | 'protocol_error' | 'output_stalled' | 'output_buffer_full' | 'shutdown' | 'socket_error';

export interface ConnectionHooks {
  /** A command finished: its spec (undefined when unknown or refused), duration, and whether it answered an error. */
  commandDone(spec: CommandSpec | undefined, seconds: number, failed: boolean): void;
  closed(connection: RespConnection, reason: CloseReason): void;
  /** Calls `connection.turnEnded()` at the end of this turn of the event loop (the server's `EndOfTurn`); asked at most once per turn. */
  atTurnEnd(connection: RespConnection): void;
}

interface Slot {
  reply: Buffer | undefined;
  /** QUIT or a protocol error: close once this reply is written. */
  readonly last: boolean;
}

/** Consecutive plain writes of one connection, written together (`putGroup`); `bytes`: their size as validateCommand counts it. */
interface PutGroup {
  readonly members: Waiting[];
  readonly ops: KvOp[];
  readonly bytes: number;
}

/**
 * A command taken from the parser, to run in its turn: its own slot in
 * `pending` (one object per command, not two: an allocation per command is a
 * visible share of a GET's cost).
 */
interface Waiting extends Slot {
  readonly command: ParsedCommand;
  readonly spec: CommandSpec;
  readonly started: number;
}

export class RespConnection {
  private readonly pending: Slot[] = [];
  /** Commands taken but not started, in order (their slots are in `pending`). */
  private readonly waiting: Waiting[] = [];
  /**
   * Commands answered at once (refused, or a synchronous reply) since their
   * durations were last recorded: `recordAnswered` does it with one clock read
   * for all of them (two `performance.now()` per command were ~4% of a
   * pipelined GET's CPU). Parallel arrays reused from pass to pass (the
   * first `answeredCount` entries count), so that nothing is allocated per
   * command; at most `pipelineDepthMax` entries each.
   */
  private readonly answeredSpecs: (CommandSpec | undefined)[] = [];
  private readonly answeredStarted: number[] = [];
  private readonly answeredFailed: boolean[] = [];
  private answeredCount = 0;
  /** Readonly commands running now. */
  private readsRunning = 0;
  /** A command that runs alone is running now. */
  private exclusiveRunning = false;
  private readonly context: CommandContext;
  /** No more commands are taken (QUIT, protocol error, shutdown); the connection ends once `pending` is written. */
  private ending = false;
  private closeReason: CloseReason = 'client';
  /** The client sent FIN (half-close): once the commands it sent are answered, the connection ends. */
  private inputEnded = false;
  private flushQueued = false;
  /** `hooks.atTurnEnd` was asked for this turn: the replies taken in it leave then. */
  private turnFlushQueued = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private stallDispatched = 0;
  /**
   * With a token file: an AUTH or HELLO taken before the connection
   * authenticated, not yet run. Nothing after it is taken until it has: its
   * outcome decides whether what follows may run, and under which limits.
   */
  private authGate: Slot | undefined;

  constructor(
    private readonly socket: Socket,
    readonly client: ClientState,
    private readonly parser: RequestParser,
    private readonly server: ServerView,
    private readonly limits: ConnectionLimits,
    private readonly hooks: ConnectionHooks,
    private readonly logger: Logger,
  ) {
    this.context = { client, server };
    if (server.auth !== undefined) parser.setLimits(PRE_AUTH_LIMITS);
    socket.on('data', (chunk: Buffer) => {
      if (socket.writableEnded) return; // lingering after our FIN: what the client still sends is dropped
      parser.feed(chunk);
      this.pump();
    });
    socket.on('end', () => {
      this.inputEnded = true;
      this.pump();
    });
    socket.on('drain', () => {
      this.clearStall();
      this.pump();
    });
    socket.on('error', (error) => {
      this.closeReason = 'socket_error';
      logger.debug({ err: error, client: client.address }, 'RESP connection error');
    });
    socket.on('close', () => {
      this.clearStall();
      hooks.closed(this, this.closeReason);
    });
  }

  /** Commands taken and not yet answered. */
  get inFlight(): number {
    return this.pending.length;
  }

  /** Shutdown: take no more commands, answer the ones taken, then end the connection. */
  shutdown(): void {
    if (!this.ending) this.closeReason = 'shutdown';
    this.ending = true;
    this.flush();
  }

  /** Closes the connection now (shutdown grace over). */
  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Takes and starts what arrived. The replies answered at once leave at the
   * end of this turn of the event loop (`turnEnded`), with every other
   * connection's of the turn, not inside this socket's `data` event: a burst
   * of replies per wakeup instead of one between each two reads
   * (src/util/end-of-turn.ts; docs/benchmarks.md, "GET over sockets").
   * `atTurnEnd`: called from `turnEnded`, so they leave now.
   */
  private pump(atTurnEnd = false): void {
    for (;;) {
      this.takeCommands();
      // Start only after taking everything that arrived: consecutive plain writes can then go as one group.
      this.schedule();
      if (atTurnEnd) this.flush();
      else if (!this.turnFlushQueued) {
        this.turnFlushQueued = true;
        this.hooks.atTurnEnd(this);
      }
      // An AUTH that ran just now opens the gate: take what follows it, under the limits it decided.
      if (this.authGate?.reply === undefined || this.ending) break;
    }
    if (this.socket.writableEnded) return; // lingering: keep reading (and dropping) until the client's FIN
    const blocked = this.ending || this.pending.length >= this.limits.pipelineDepthMax || this.socket.writableLength >= this.limits.outputBytesHighWater;
    if (blocked) this.socket.pause();
    else this.socket.resume();
  }

  /** The end of a turn in which `pump` ran: writes what was answered, then takes what the written replies made room for. */
  turnEnded(): void {
    this.turnFlushQueued = false;
    if (this.flush() && !this.ending) this.pump(true);
  }

  /** Takes commands from the parser while the bounds allow (see the file comment) and no AUTH gate is closed. */
  private takeCommands(): void {
    const auth = this.server.auth !== undefined;
    // Nothing is written while commands are taken (replies leave in `flush`): the output bound is checked once.
    if (this.socket.writableLength >= this.limits.outputBytesHighWater) return;
    // One clock read for the commands of this read: they arrived together.
    const takenAt = performance.now();
    while (!this.ending && this.pending.length < this.limits.pipelineDepthMax) {
      if (this.authGate !== undefined) {
        if (this.authGate.reply === undefined) break;
        this.authGate = undefined;
      }
      const unauthenticated = auth && mustAuthenticate(this.context);
      if (auth) this.parser.setLimits(unauthenticated ? PRE_AUTH_LIMITS : this.limits.parserLimits);
      const next = this.parser.next();
      if (next === undefined) {
        // The client half-closed and everything it sent is taken: answer it all, then end.
        if (this.inputEnded) this.ending = true;
        break;
      }
      if (next instanceof ProtocolError) {
        this.closeReason = 'protocol_error';
        this.ending = true;
        this.pending.push({ reply: errorReply(`ERR ${next.message}`), last: true });
        break;
      }
      const taken = this.take(next, takenAt);
      if (unauthenticated && taken !== undefined && (taken.spec.name === 'auth' || taken.spec.name === 'hello')) this.authGate = taken;
    }
  }

  /** Takes one command: refuses it at once, or queues it to run in its turn (`schedule`) and returns it. */
  private take(command: ParsedCommand, started: number): Waiting | undefined {
    // The name is absent when it was itself over the limits (skipped by the parser).
    const name = command.args[0];
    const spec = name === undefined ? undefined : this.server.commands.find(name);
    const refused = this.refusal(command, spec);
    if (refused !== undefined) {
      this.pending.push({ reply: refused, last: false });
      this.answered(spec, started, true);
      return undefined;
    }
    // Nothing after QUIT is taken; the connection closes once its OK is written.
    const quit = spec!.name === 'quit';
    if (quit) {
      this.closeReason = 'quit';
      this.ending = true;
    }
    const waiting: Waiting = { reply: undefined, last: quit, command, spec: spec!, started };
    this.pending.push(waiting);
    this.waiting.push(waiting);
    return waiting;
  }

  /** Starts the waiting commands whose turn has come (see "Order of effects"). */
  private schedule(): void {
    while (this.waiting.length > 0 && !this.exclusiveRunning) {
      const next = this.waiting[0]!;
      const readonly = next.spec.flags.includes('readonly');
      if (!readonly && this.readsRunning > 0) break;
      const group = next.spec.puts !== undefined ? this.putGroup() : undefined;
      if (group !== undefined) {
        this.runGroup(group);
        continue;
      }
      this.waiting.shift();
      const reply = this.start(next);
      if (reply === undefined) continue;
      if (readonly) this.readsRunning++;
      else this.exclusiveRunning = true;
      reply.then(
        (buffer) => this.settle([next], buffer, readonly),
        (error: unknown) => this.settle([next], this.failure(error, next.spec), readonly),
      );
    }
    this.recordAnswered();
  }

  /**
   * Consecutive plain writes at the head of `waiting` (SET k v, MSET: see
   * `CommandSpec.puts`), taken out as one group (of one or more): their puts,
   * in order, form one submission to the server's PutCoalescer (a later put of
   * a key wins, as if run one by one), within the service's batch limits. A
   * command whose own puts are invalid ends the group and later fails on its
   * own (undefined when it is the first).
   */
  private putGroup(): PutGroup | undefined {
    const limits = this.server.service.limits;
    const members: Waiting[] = [];
    const ops: KvOp[] = [];
    let bytes = 0;
    for (const candidate of this.waiting) {
      const puts = candidate.spec.puts?.(candidate.command.args);
      if (puts === undefined || ops.length + puts.length > limits.batchOpsMax) break;
      let size: number;
      try {
        size = validateCommand({ ops: puts }, limits);
      } catch {
        break;
      }
      if (bytes + size > limits.batchBytesMax) break;
      members.push(candidate);
      ops.push(...puts);
      bytes += size;
    }
    if (members.length === 0) return undefined;
    this.waiting.splice(0, members.length);
    return { members, ops, bytes };
  }

  private runGroup(group: PutGroup): void {
    this.exclusiveRunning = true;
    this.writeGroup(group).then(
      () => this.release(false),
      (error: unknown) => {
        // writeGroup answers every failure itself; reaching here is a bug: answer what is left, and say so.
        for (const member of group.members) if (member.reply === undefined) this.fill([member], this.failure(error, member.spec));
        this.release(false);
      },
    );
  }

  /**
   * Writes a put group, through the PutCoalescer (one command with other
   * connections' plain writes of this turn). A service may refuse a command
   * for holding several keys, before anything is applied (`refusedAsBatch`: a
   * sharded service's keys of several shards, a leaderless service's second
   * key): then the group's commands are written one by one, in order, each
   * answered as it completes.
   */
  private async writeGroup({ members, ops, bytes }: PutGroup): Promise<void> {
    const { service } = this.server;
    try {
      await this.server.putCoalescer.submit(ops, bytes);
      this.fill(members, OK);
      return;
    } catch (error) {
      if (!refusedAsBatch(error)) {
        this.fill(members, this.failure(error, members[0]!.spec));
        return;
      }
    }
    for (const member of members) {
      const reply = await service.write({ ops: member.spec.puts!(member.command.args)! }).then(
        () => OK,
        (error: unknown) => this.failure(error, member.spec),
      );
      this.fill([member], reply);
    }
  }

  /** Runs a command; fills its slot and returns undefined when it answered at once, else its pending reply. */
  private start(waiting: Waiting): Promise<Buffer> | undefined {
    const { spec } = waiting;
    let reply: Buffer | Promise<Buffer>;
    try {
      reply = spec.run(this.context, waiting.command.args);
    } catch (error) {
      reply = this.failure(error, spec);
    }
    if (!Buffer.isBuffer(reply)) return reply;
    waiting.reply = reply;
    this.answered(spec, waiting.started, reply[0] === 0x2d);
    return undefined;
  }

  /** A command answered at once; its duration is recorded by the next `recordAnswered`. */
  private answered(spec: CommandSpec | undefined, started: number, failed: boolean): void {
    const at = this.answeredCount++;
    this.answeredSpecs[at] = spec;
    this.answeredStarted[at] = started;
    this.answeredFailed[at] = failed;
  }

  /**
   * Records the commands answered at once, all ending now: in the metrics a
   * synchronous command lasts from the read that brought it to the end of
   * the scheduling pass that answered it (its reply leaves with that pass's flush).
   */
  private recordAnswered(): void {
    const count = this.answeredCount;
    if (count === 0) return;
    this.answeredCount = 0;
    const now = performance.now();
    for (let i = 0; i < count; i++) this.hooks.commandDone(this.answeredSpecs[i], (now - this.answeredStarted[i]!) / 1000, this.answeredFailed[i]!);
  }

  /** The error reply for a command that must not run (over the limits, unknown, wrong arity, refused by the token check), or undefined. */
  private refusal(command: ParsedCommand, spec: CommandSpec | undefined): Buffer | undefined {
    if (command.tooLargeBytes !== undefined) {
      // Before AUTH the limits are small (access.ts): a large command then is one the connection may not send yet.
      if (this.server.auth !== undefined && mustAuthenticate(this.context)) {
        this.server.authRefused('noauth');
        return NOAUTH;
      }
      const { argBytesMax, commandBytesMax } = this.limits.parserLimits;
      return errorReply(`ERR the command's arguments are ${command.tooLargeBytes} bytes or more; an argument may have at most ${argBytesMax} bytes and a command ${commandBytesMax} (IMPULSE_ERR_VALUE_TOO_LARGE)`);
    }
    if (spec === undefined) return unknownCommand(command.args);
    if (!arityFits(spec, command.args.length)) return wrongArity(spec.name);
    return accessRefusal(this.context, spec, command.args);
  }

  private failure(error: unknown, spec: CommandSpec): Buffer {
    const { reply, expected } = failureReply(error);
    if (!expected) this.logger.error({ err: error, command: spec.name, client: this.client.address }, 'unexpected error while serving a RESP command');
    return reply;
  }

  /** Commands that ran together (one, or a put group) answered `reply`: fill their slots, start what waits, write. */
  private settle(done: readonly Waiting[], reply: Buffer, readonly: boolean): void {
    this.fill(done, reply);
    this.release(readonly);
  }

  /** Answers `done` with `reply`; the replies leave with the next flush. */
  private fill(done: readonly Waiting[], reply: Buffer): void {
    const now = performance.now();
    for (const member of done) {
      member.reply = reply;
      this.hooks.commandDone(member.spec, (now - member.started) / 1000, reply[0] === 0x2d);
    }
    this.queueFlush();
  }

  /** A running command (readonly or not) finished: start what waited for it (and write what that answered at once). */
  private release(readonly: boolean): void {
    if (readonly) this.readsRunning--;
    else this.exclusiveRunning = false;
    this.schedule();
    this.queueFlush();
  }

  /** Writes the answered replies soon: several commands often finish in the same tick (one group commit), and go out together. */
  private queueFlush(): void {
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        if (this.flush() && !this.ending) this.pump();
      });
    }
  }

  /** Writes the answered slots at the head of `pending`; true when it wrote any. */
  private flush(): boolean {
    if (this.socket.destroyed) return false;
    let count = 0;
    let last = false;
    while (count < this.pending.length && this.pending[count]!.reply !== undefined) {
      last = this.pending[count]!.last;
      count++;
      if (last) break;
    }
    if (count > 0) this.writeReplies(count === 1 ? [this.pending.shift()!.reply!] : this.pending.splice(0, count).map((slot) => slot.reply!));
    if (last || (this.ending && this.pending.length === 0)) {
      this.pending.length = 0;
      this.lingeringClose();
      return count > 0;
    }
    this.watchOutput();
    return count > 0;
  }

  /**
   * Hands `replies` to the socket in as few writes as it can: small replies
   * are copied into one Buffer (up to COALESCE_BYTES_MAX), a large one goes
   * as it is. One `socket.write` per flush is the common case (one reply
   * without pipelining, one Buffer for a pipeline's batch): each write costs
   * the stream layer's bookkeeping and a system call, more than the copy.
   */
  private writeReplies(replies: readonly Buffer[]): void {
    if (replies.length === 1) {
      this.socket.write(replies[0]!);
      return;
    }
    const corked = replies.some((reply) => reply.length >= COALESCE_BYTES_MAX);
    if (corked) this.socket.cork();
    let run: Buffer[] = [];
    let runBytes = 0;
    const writeRun = (): void => {
      if (run.length > 0) this.socket.write(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
      run = [];
      runBytes = 0;
    };
    for (const reply of replies) {
      if (reply.length >= COALESCE_BYTES_MAX) {
        writeRun();
        this.socket.write(reply);
        continue;
      }
      if (runBytes + reply.length > COALESCE_BYTES_MAX) writeRun();
      run.push(reply);
      runBytes += reply.length;
    }
    writeRun();
    if (corked) this.socket.uncork();
  }

  /**
   * Ends the connection after the last reply, as a lingering close (as the
   * HTTP pipeline does): our FIN goes out after the replies, and what the
   * client still sends is read and dropped, so that the close does not become
   * a reset that could destroy replies it has not read yet, and so that a
   * paused socket with unread input still sees the client's FIN and closes.
   * After `LINGER_MS` the socket is destroyed whatever the client does.
   */
  private lingeringClose(): void {
    if (this.socket.writableEnded) return;
    this.socket.end();
    this.socket.resume();
    const linger = setTimeout(() => this.socket.destroy(), LINGER_MS);
    linger.unref();
    this.socket.once('close', () => clearTimeout(linger));
  }

  /** Enforces the output bounds: close at `outputBytesMax`; above the high-water mark, watch for a stall. */
  private watchOutput(): void {
    const unsent = this.socket.writableLength;
    if (unsent > this.limits.outputBytesMax) {
      this.closeReason = 'output_buffer_full';
      this.logger.warn({ client: this.client.address, unsentBytes: unsent }, 'RESP client does not read its replies: output buffer limit reached, closing');
      this.socket.destroy();
      return;
    }
    if (unsent >= this.limits.outputBytesHighWater && this.stallTimer === undefined) this.armStall();
  }

  /** Bytes handed to the kernel so far (written minus still queued in Node). */
  private dispatched(): number {
    return this.socket.bytesWritten - this.socket.writableLength;
  }

  private armStall(): void {
    this.stallDispatched = this.dispatched();
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (this.socket.writableLength === 0) return;
      // Below the high-water mark but not empty, no 'drain' comes until the client reads: keep watching.
      if (this.dispatched() > this.stallDispatched) return this.armStall(); // slow, but reading
      this.closeReason = 'output_stalled';
      this.logger.warn({ client: this.client.address, unsentBytes: this.socket.writableLength, stallMs: this.limits.outputStallMs }, 'RESP client stopped reading its replies, closing');
      this.socket.destroy();
    }, this.limits.outputStallMs);
    this.stallTimer.unref();
  }

  private clearStall(): void {
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }
}

/**
 * The key commands, mapped onto the KvService (docs/resp.md has the table):
 *   GET, MGET, EXISTS       reads at the connection's consistency (linearizable
 *                           unless READONLY); MGET and EXISTS read each key on
 *                           its own (not one snapshot of all keys);
 *   SET                     one put; NX = the put's `ifAbsent` condition; XX and
 *                           GET read the key, then put on condition that it is
 *                           still what was read (retried when it changed);
 *   MSET, MSETNX            one command of puts, atomic (MSETNX: all `ifAbsent`);
 *   DEL, UNLINK             read the keys, then one command of deletes on
 *                           condition that each is still as read, so the count is exact;
 *   SCAN                    a range read from the cursor's key (scan-cursors.ts),
 *                           bounded by the MATCH pattern's literal prefix;
 *   DBSIZE                  the engine's key count, where it keeps one cheaply.
 * Redis's expiry options (EX, PX, EXAT, PXAT) are refused: impulse keeps no TTLs.
 */
import { ImpulseError, isImpulseError } from '../../errors.js';
import type { Condition, KvCommand, KvOp } from '../../kv/command.js';
import type { StoredValue } from '../../kv/record.js';
import { READ_NOT_SYNC, type ReadConsistency, type ReadOptions } from '../../service/kv-service.js';
import { prefixUpperBound } from '../../storage/engine.js';
import { type CommandContext, type CommandSpec, integerArg, isKeyword } from '../command.js';
import { OK, arrayReply, bulkOrNullArray, bulkReply, errorReply, integerReply, nullReply } from '../encoder.js';
import { NOT_INTEGER, SYNTAX_ERROR } from '../errors.js';
import { rangeRefusal } from '../access.js';
import { globMatch, isPrefixPattern, literalPrefix } from '../glob.js';

const KEY_ONE: readonly [number, number, number] = [1, 1, 1];
const KEY_ALL: readonly [number, number, number] = [1, -1, 1];

/** A read's options by the connection's consistency: made once, not per command. */
const READ_OPTIONS: Readonly<Record<ReadConsistency, ReadOptions>> = {
  linearizable: { consistency: 'linearizable' },
  serializable: { consistency: 'serializable' },
};

function readOptions(context: CommandContext): ReadOptions {
  return READ_OPTIONS[context.client.consistency];
}

function read(context: CommandContext, key: Buffer): Promise<StoredValue | undefined> {
  return context.server.service.get(key, readOptions(context));
}

function conditionOf(stored: StoredValue | undefined): Condition {
  return stored === undefined ? { ifAbsent: true } : { ifRevision: stored.revision };
}

/** Whether `error` is a failed condition (a concurrent change to a key that was read). */
function conditionFailed(error: unknown): boolean {
  return isImpulseError(error, 'IMPULSE_ERR_PRECONDITION_FAILED');
}

/**
 * Read-then-conditional-write: `attempt` reads and writes on condition that
 * what it read still holds; when another write got in between, it runs again,
 * at most `conditionalRetriesMax` times (then TRYAGAIN).
 */
async function withRetries(context: CommandContext, attempt: () => Promise<Buffer>): Promise<Buffer> {
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (!conditionFailed(error) || tries >= context.server.conditionalRetriesMax) {
        if (conditionFailed(error)) throw new ImpulseError('IMPULSE_ERR_UNAVAILABLE', `the keys kept changing between read and write (${tries + 1} tries); nothing was changed`);
        throw error;
      }
    }
  }
}

function valueOrNil(context: CommandContext, stored: StoredValue | undefined): Buffer {
  return stored === undefined ? nullReply(context.client.proto) : bulkReply(stored.value);
}

const get: CommandSpec = {
  name: 'get', arity: 2, flags: ['readonly', 'fast'], keys: KEY_ONE, group: 'string', summary: 'Returns the value of a key, or nil.',
  run: (context, args) => {
    // An engine that reads without waiting (memory, LevelDB) answers at once: no promise, and the
    // reply leaves in the same turn as the request came (the service's getSync; throws what get rejects with).
    const { service } = context.server;
    if (service.getSync !== undefined) {
      const stored = service.getSync(args[1]!, readOptions(context));
      if (stored !== READ_NOT_SYNC) return valueOrNil(context, stored);
    }
    return read(context, args[1]!).then((value) => valueOrNil(context, value));
  },
};

interface SetOptions {
  readonly ifAbsent: boolean;
  readonly ifPresent: boolean;
  readonly returnOld: boolean;
}

/** SET's options after key and value, or the error reply. */
function parseSetOptions(args: Buffer[]): SetOptions | Buffer {
  let ifAbsent = false;
  let ifPresent = false;
  let returnOld = false;
  for (let i = 3; i < args.length; i++) {
    const arg = args[i]!;
    if (isKeyword(arg, 'NX') && !ifPresent) ifAbsent = true;
    else if (isKeyword(arg, 'XX') && !ifAbsent) ifPresent = true;
    else if (isKeyword(arg, 'GET')) returnOld = true;
    else if (isKeyword(arg, 'KEEPTTL')) continue; // no key has a TTL: keeping it is what happens anyway
    else if (['EX', 'PX', 'EXAT', 'PXAT'].some((option) => isKeyword(arg, option))) {
      return errorReply('ERR impulse keeps no expiry: SET with EX, PX, EXAT or PXAT is not supported');
    } else return SYNTAX_ERROR;
  }
  return { ifAbsent, ifPresent, returnOld };
}

const set: CommandSpec = {
  name: 'set', arity: -3, flags: ['write', 'denyoom'], keys: KEY_ONE, group: 'string', summary: 'Sets a key to a value (NX, XX, GET; no expiry).',
  puts: (args) => (args.length === 3 ? [{ type: 'put', key: args[1]!, value: args[2]! }] : undefined),
  run: (context, args) => {
    const options = parseSetOptions(args);
    if (Buffer.isBuffer(options)) return options;
    const key = args[1]!;
    const value = args[2]!;
    const put = (condition?: Condition): Promise<unknown> => context.server.service.write({ ops: [{ type: 'put', key, value, ...(condition ? { condition } : {}) }] });
    const nil = nullReply(context.client.proto);
    if (!options.ifPresent && !options.returnOld) {
      if (!options.ifAbsent) return put().then(() => OK);
      return put({ ifAbsent: true }).then(() => OK, (error: unknown) => (conditionFailed(error) ? nil : Promise.reject(error)));
    }
    // XX and GET need the current value: read it, then write on condition that it is still the one read.
    return withRetries(context, async () => {
      const old = await read(context, key);
      const oldReply = options.returnOld ? (old === undefined ? nil : bulkReply(old.value)) : OK;
      if (options.ifPresent && old === undefined) return nil;
      if (options.ifAbsent && old !== undefined) return options.returnOld ? oldReply : nil;
      await put(conditionOf(old));
      return oldReply;
    });
  },
};

/** Keys without repeats, first occurrence order. */
function distinct(keys: readonly Buffer[]): Buffer[] {
  const seen = new Set<string>();
  return keys.filter((key) => {
    const id = key.toString('latin1');
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** DEL and UNLINK: the number of keys that existed, exact: the deletes apply only if every key is still as read. */
function deleteKeys(context: CommandContext, args: Buffer[]): Promise<Buffer> {
  const keys = distinct(args.slice(1));
  return withRetries(context, async () => {
    const found = await Promise.all(keys.map((key) => read(context, key)));
    const present = found.filter((stored) => stored !== undefined).length;
    if (present === 0) return integerReply(0);
    const ops: KvOp[] = keys.map((key, i) => ({ type: 'del', key, condition: conditionOf(found[i]) }));
    await context.server.service.write({ ops });
    return integerReply(present);
  });
}

const del: CommandSpec = { name: 'del', arity: -2, flags: ['write'], keys: KEY_ALL, group: 'generic', summary: 'Deletes keys; returns how many existed.', run: deleteKeys };
const unlink: CommandSpec = { ...del, name: 'unlink', flags: ['write', 'fast'], summary: 'Deletes keys (as DEL: impulse frees nothing lazily).' };

const exists: CommandSpec = {
  name: 'exists', arity: -2, flags: ['readonly', 'fast'], keys: KEY_ALL, group: 'generic', summary: 'Counts the given keys that exist (a repeated key counts each time).',
  run: async (context, args) => {
    const found = await Promise.all(args.slice(1).map((key) => read(context, key)));
    return integerReply(found.filter((stored) => stored !== undefined).length);
  },
};

const mget: CommandSpec = {
  name: 'mget', arity: -2, flags: ['readonly', 'fast'], keys: KEY_ALL, group: 'string', summary: 'Returns the values of keys (nil for absent ones).',
  run: async (context, args) => {
    const found = await Promise.all(args.slice(1).map((key) => read(context, key)));
    return bulkOrNullArray(context.client.proto, found.map((stored) => stored?.value));
  },
};

/** The puts of MSET / MSETNX, or undefined when the arguments do not pair up. */
function putsOf(args: Buffer[], condition?: Condition): KvCommand | undefined {
  if (args.length % 2 === 0) return undefined;
  const ops: KvOp[] = [];
  for (let i = 1; i < args.length; i += 2) ops.push({ type: 'put', key: args[i]!, value: args[i + 1]!, ...(condition ? { condition } : {}) });
  return { ops };
}

const mset: CommandSpec = {
  name: 'mset', arity: -3, flags: ['write', 'denyoom'], keys: [1, -1, 2], group: 'string', summary: 'Sets several keys in one atomic write.',
  puts: (args) => putsOf(args)?.ops.slice(),
  run: (context, args) => {
    const command = putsOf(args);
    if (command === undefined) return errorReply("ERR wrong number of arguments for 'mset' command");
    return context.server.service.write(command).then(() => OK);
  },
};

const msetnx: CommandSpec = {
  name: 'msetnx', arity: -3, flags: ['write', 'denyoom'], keys: [1, -1, 2], group: 'string', summary: 'Sets several keys in one atomic write only if none exists; 1 if set, else 0.',
  run: (context, args) => {
    const command = putsOf(args, { ifAbsent: true });
    if (command === undefined) return errorReply("ERR wrong number of arguments for 'msetnx' command");
    return context.server.service.write(command).then(
      () => integerReply(1),
      (error: unknown) => (conditionFailed(error) ? integerReply(0) : Promise.reject(error)),
    );
  },
};

interface ScanOptions {
  readonly pattern: Buffer | undefined;
  readonly count: number;
  /** False after TYPE with anything but "string": impulse holds strings only. */
  readonly stringsWanted: boolean;
}

function parseScanOptions(args: Buffer[]): ScanOptions | Buffer {
  let pattern: Buffer | undefined;
  let count = 10;
  let stringsWanted = true;
  for (let i = 2; i < args.length; i += 2) {
    const value = args[i + 1];
    if (value === undefined) return SYNTAX_ERROR;
    if (isKeyword(args[i], 'MATCH')) pattern = value;
    else if (isKeyword(args[i], 'COUNT')) {
      const parsed = integerArg(value);
      if (parsed === undefined) return NOT_INTEGER;
      if (parsed < 1) return SYNTAX_ERROR;
      count = parsed;
    } else if (isKeyword(args[i], 'TYPE')) stringsWanted = isKeyword(value, 'STRING');
    else return SYNTAX_ERROR;
  }
  return { pattern, count, stringsWanted };
}

const scan: CommandSpec = {
  name: 'scan', arity: -2, flags: ['readonly'], keys: [0, 0, 0], group: 'generic', summary: 'Iterates over keys in key order (MATCH, COUNT, TYPE).',
  run: async (context, args) => {
    const position = context.server.cursors.resolve(args[1]!.toString('latin1'));
    if (position === undefined) return errorReply('ERR invalid cursor');
    const options = parseScanOptions(args);
    if (Buffer.isBuffer(options)) return options;
    const done = (keys: Buffer[], cursor: string): Buffer => arrayReply([bulkReply(cursor), arrayReply(keys.map((key) => bulkReply(key)))]);
    if (!options.stringsWanted) return done([], '0');
    const prefix = options.pattern === undefined ? Buffer.alloc(0) : literalPrefix(options.pattern);
    // Start at the prefix, or just after the cursor's key when that is further on.
    const after = position !== null && Buffer.compare(position.after, prefix) >= 0 ? position.after : undefined;
    const upper = prefixUpperBound(prefix);
    const forbidden = rangeRefusal(context, { gte: prefix, ...(upper !== undefined ? { lt: upper } : {}) });
    if (forbidden !== undefined) return forbidden;
    const limit = Math.min(options.count, context.server.scanCountMax);
    const items = await context.server.service.range(
      { ...(after !== undefined ? { gt: after } : { gte: prefix }), ...(upper !== undefined ? { lt: upper } : {}), limit },
      readOptions(context),
    );
    const filter = options.pattern !== undefined && !isPrefixPattern(options.pattern) ? options.pattern : undefined;
    const keys = items.map((item) => item.key).filter((key) => filter === undefined || globMatch(filter, key));
    const cursor = items.length === limit ? context.server.cursors.issue({ after: items[items.length - 1]!.key }) : '0';
    return done(keys, cursor);
  },
};

const dbsize: CommandSpec = {
  name: 'dbsize', arity: 1, flags: ['readonly', 'fast'], keys: [0, 0, 0], group: 'server', summary: 'The number of keys, where the engine counts them cheaply.',
  run: async (context) => {
    const status = await context.server.status();
    if (status.keyCount === null) return errorReply(`ERR the ${status.engine} engine keeps no cheap key count; DBSIZE would scan every key (use SCAN)`);
    return integerReply(status.keyCount);
  },
};

export const KEY_COMMANDS: readonly CommandSpec[] = [get, set, del, unlink, exists, mget, mset, msetnx, scan, dbsize];

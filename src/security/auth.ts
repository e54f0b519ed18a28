/**
 * Bearer-token authentication and role-based authorisation of API requests
 * (docs/security.md). A token file lists the tokens; each has a name (what
 * logs show: a token itself is never logged, nor put in an error), a role and
 * optionally a key prefix:
 *
 *   # name    role   token                                   [prefix]
 *   backup    read   9c1f0f2e8b6a4d7c95e3a1b2c3d4e5f6
 *   app       write  4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a99        app/
 *   operator  admin  0a1b2c3d4e5f60718293a4b5c6d7e8f9
 *
 * Roles nest: `read` may GET keys and ranges; `write` may also PUT, DELETE and
 * POST batches; `admin` may also change the cluster (membership, leadership).
 * A prefix (percent-encoded like a key in a path) limits a token to the keys
 * that start with it: single keys, ranges that lie wholly inside it, batches
 * whose every operation does. Cluster changes and /digest (a digest of every
 * key) need a token without a prefix.
 *
 * Tokens are compared in constant time: the presented token's SHA-256 digest
 * is compared with every entry's digest by `timingSafeEqual`, and the loop
 * never stops early, so the time taken says nothing about which entry (or how
 * much of one) matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ImpulseError } from '../errors.js';
import { percentDecode } from '../protocol/codec.js';
import { type RangeOptions, prefixUpperBound } from '../storage/engine.js';

export type Role = 'read' | 'write' | 'admin';

/** The bounds of a range read (only the bounds matter to access; limit and direction may be left out). */
export type KeyBounds = Partial<RangeOptions>;

const ROLE_RANK: Readonly<Record<Role, number>> = { read: 1, write: 2, admin: 3 };

/** Who a request comes from: the entry of the token it presented. */
export interface Principal {
  readonly name: string;
  readonly role: Role;
  /** Only keys starting with these bytes; absent: every key. */
  readonly prefix?: Buffer;
}

interface TokenEntry extends Principal {
  readonly digest: Buffer;
}

/** Most tokens a file may hold (the constant-time lookup visits all of them). */
export const TOKENS_MAX = 1000;
/** Shortest token accepted: 16 characters (e.g. 8 random bytes in hex); `impulse certs` and the docs use 32 random bytes. */
export const TOKEN_CHARS_MIN = 16;
const TOKEN_CHARS_MAX = 4096;

/** The tokens of one token file. Immutable: a reload builds a new table. */
export class TokenTable {
  private constructor(private readonly entries: readonly TokenEntry[]) {}

  get size(): number {
    return this.entries.length;
  }

  /**
   * Parses a token file (format above). Throws IMPULSE_ERR_CONFIG_INVALID
   * naming `source` and the line (never the token) for a malformed line, an
   * unknown role, a short token, a duplicate name or token, or an empty file.
   */
  static parse(text: string, source: string): TokenTable {
    const entries: TokenEntry[] = [];
    const names = new Set<string>();
    const lines = text.split(/\r?\n/);
    for (let index = 0; index < lines.length; index++) {
      const line = lines[index]!.trim();
      if (line.length === 0 || line.startsWith('#')) continue;
      const where = `${source} line ${index + 1}`;
      const fields = line.split(/\s+/);
      if (fields.length < 3 || fields.length > 4) throw invalid(`${where}: expected "name role token [prefix]"`);
      const [name, role, token, prefixText] = fields as [string, string, string, string | undefined];
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw invalid(`${where}: a token name is 1-64 characters of A-Z a-z 0-9 _ . -`);
      if (!Object.hasOwn(ROLE_RANK, role)) throw invalid(`${where}: role must be read, write or admin`);
      if (token.length < TOKEN_CHARS_MIN || token.length > TOKEN_CHARS_MAX) throw invalid(`${where}: a token is ${TOKEN_CHARS_MIN} to ${TOKEN_CHARS_MAX} characters`);
      if (names.has(name)) throw invalid(`${where}: token name ${name} is used twice`);
      const digest = digestOf(token);
      if (entries.some((entry) => entry.digest.equals(digest))) throw invalid(`${where}: the same token is listed twice`);
      const prefix = prefixText === undefined ? undefined : percentDecode(prefixText, false, 'IMPULSE_ERR_CONFIG_INVALID');
      if (prefix !== undefined && prefix.length === 0) throw invalid(`${where}: the prefix is empty`);
      names.add(name);
      entries.push({ name, role: role as Role, digest, ...(prefix !== undefined ? { prefix } : {}) });
      if (entries.length > TOKENS_MAX) throw invalid(`${source}: more than ${TOKENS_MAX} tokens`);
    }
    if (entries.length === 0) throw invalid(`${source} lists no tokens (lines are "name role token [prefix]")`);
    return new TokenTable(entries);
  }

  /** The entry whose token is `token`, in time independent of which entry matches; undefined when none does. */
  lookup(token: string): Principal | undefined {
    return this.lookupDigest(digestOf(token));
  }

  /** As `lookup`, by the token's SHA-256 digest (a credential kept by a connection, see `Authorizer.identify`). */
  lookupDigest(digest: Buffer): Principal | undefined {
    let found: TokenEntry | undefined;
    for (const entry of this.entries) {
      // No early exit: every entry is compared.
      if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry;
    }
    return found === undefined ? undefined : { name: found.name, role: found.role, ...(found.prefix !== undefined ? { prefix: found.prefix } : {}) };
  }
}

/**
 * What a long-lived connection (RESP) keeps after authenticating once: the
 * principal, and the token's digest, so that after a reload of the token file
 * the connection is checked against the new table (a removed token stops
 * working on open connections too). The token itself is not kept.
 */
export interface Credential {
  readonly principal: Principal;
  readonly digest: Buffer;
  /** The token table generation `principal` was looked up in. */
  readonly generation: number;
}

/**
 * The server's authorisation policy: the token table (replaceable at runtime,
 * `reload`) and whether /metrics and /status stay open. Every check throws
 * IMPULSE_ERR_AUTH_REQUIRED (401) or IMPULSE_ERR_AUTH_FORBIDDEN (403).
 */
export class Authorizer {
  constructor(
    private tokens: TokenTable,
    /** /metrics and /status answer without a token (for a scraper on a trusted network). */
    readonly metricsOpen: boolean,
  ) {}

  /** Bumped by every reload: a `Credential` from an older generation is looked up again. */
  private generation = 0;

  /**
   * Per connection (a keep-alive HTTP socket), the last Authorization header
   * it passed with and its `Credential` (RESP's per-connection mechanism): a
   * client sends the same header on every request, so the digest is taken
   * once a connection, not once a request (it was ~15 µs of a ~95 µs GET).
   * Only an identical header from the same connection reuses it, and
   * `refresh` looks it up again after a reload; the header compared against
   * came from that connection itself. Weakly held: a closed socket's entry
   * goes with it.
   */
  private readonly accepted = new WeakMap<object, { readonly header: string; readonly credential: Credential }>();

  /** Replaces the token table (a reload of the token file); requests from here on use the new one. */
  reload(tokens: TokenTable): void {
    this.tokens = tokens;
    this.generation++;
  }

  /** The credential of a presented token (RESP's AUTH), or undefined when the token is unknown. */
  identify(token: string): Credential | undefined {
    const digest = digestOf(token);
    const principal = this.tokens.lookupDigest(digest);
    return principal === undefined ? undefined : { principal, digest, generation: this.generation };
  }

  /**
   * `credential` as it stands now: itself while the token table is the one it
   * was looked up in; after a reload, looked up again (undefined when its
   * token is gone; its role or prefix may have changed).
   */
  refresh(credential: Credential): Credential | undefined {
    if (credential.generation === this.generation) return credential;
    const principal = this.tokens.lookupDigest(credential.digest);
    return principal === undefined ? undefined : { principal, digest: credential.digest, generation: this.generation };
  }

  get tokenCount(): number {
    return this.tokens.size;
  }

  /**
   * The principal of a request's `Authorization: Bearer` header; 401 when
   * absent, malformed or unknown. `connection` (the request's socket), when
   * given, lets a connection that repeats the header it was accepted with
   * skip the lookup (see `accepted`).
   */
  authenticate(headers: IncomingHttpHeaders, connection?: object): Principal {
    const header = headers.authorization;
    if (header === undefined) throw new ImpulseError('IMPULSE_ERR_AUTH_REQUIRED', 'this server requires a bearer token (Authorization: Bearer <token>)');
    const known = connection === undefined ? undefined : this.accepted.get(connection);
    let credential: Credential | undefined;
    if (known !== undefined && known.header === header) {
      credential = this.refresh(known.credential);
    } else {
      const match = /^Bearer[ ]+([!-~]+)[ ]*$/i.exec(header);
      if (match === null) throw new ImpulseError('IMPULSE_ERR_AUTH_REQUIRED', 'the Authorization header must be "Bearer <token>"');
      credential = this.identify(match[1]!);
    }
    if (credential === undefined) throw new ImpulseError('IMPULSE_ERR_AUTH_REQUIRED', 'the bearer token is not valid on this server');
    if (connection !== undefined && credential !== known?.credential) this.accepted.set(connection, { header, credential });
    return credential.principal;
  }

  /** Authenticates and checks that the principal's role is at least `role`; `wholeKeySpace` also refuses prefix-limited tokens. */
  require(headers: IncomingHttpHeaders, role: Role, wholeKeySpace = false, connection?: object): Principal {
    const principal = this.authenticate(headers, connection);
    if (!roleAllows(principal, role)) {
      throw new ImpulseError('IMPULSE_ERR_AUTH_FORBIDDEN', `token ${principal.name} has role ${principal.role}; this request needs ${role}`);
    }
    if (wholeKeySpace && principal.prefix !== undefined) {
      throw new ImpulseError('IMPULSE_ERR_AUTH_FORBIDDEN', `token ${principal.name} is limited to a key prefix; this request needs a token for every key`);
    }
    return principal;
  }
}

/** Whether the principal's role is at least `role`. */
export function roleAllows(principal: Principal, role: Role): boolean {
  return ROLE_RANK[principal.role] >= ROLE_RANK[role];
}

/** Whether `key` starts with the principal's prefix (always, without one). */
export function keyAllowed(principal: Principal, key: Uint8Array): boolean {
  const prefix = principal.prefix;
  return prefix === undefined || (key.length >= prefix.length && Buffer.compare(prefix, key.subarray(0, prefix.length)) === 0);
}

/** 403 unless `key` starts with the principal's prefix. */
export function requireKeyAllowed(principal: Principal, key: Uint8Array): void {
  if (!keyAllowed(principal, key)) {
    throw new ImpulseError('IMPULSE_ERR_AUTH_FORBIDDEN', `token ${principal.name} may only use keys under its prefix`);
  }
}

/**
 * Whether the range lies wholly inside the principal's prefix: its lower
 * bound is at or after the prefix and its upper bound at or before the
 * prefix's successor. (A range that strays outside is refused rather than
 * clipped: the client asked for keys it may not see.)
 */
export function rangeAllowed(principal: Principal, range: KeyBounds): boolean {
  const prefix = principal.prefix;
  if (prefix === undefined) return true;
  const lower = range.gte ?? range.gt;
  const prefixEnd = prefixUpperBound(prefix);
  const lowerInside = lower !== undefined && Buffer.compare(lower, prefix) >= 0;
  let upperInside: boolean;
  if (prefixEnd === undefined) upperInside = true; // the prefix is all 0xff bytes: every key after it starts with it
  else if (range.lt !== undefined) upperInside = Buffer.compare(range.lt, prefixEnd) <= 0;
  else if (range.lte !== undefined) upperInside = Buffer.compare(range.lte, prefixEnd) < 0;
  else upperInside = false;
  return lowerInside && upperInside;
}

/** 403 unless `rangeAllowed`. */
export function requireRangeAllowed(principal: Principal, range: KeyBounds): void {
  if (!rangeAllowed(principal, range)) {
    throw new ImpulseError('IMPULSE_ERR_AUTH_FORBIDDEN', `token ${principal.name} may only read ranges inside its prefix (give prefix=, or start and end within it)`);
  }
}

function digestOf(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function invalid(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', message);
}

/**
 * JSON parsing that refuses what `JSON.parse` quietly accepts and changes:
 *   - bytes that are not UTF-8 (`Buffer.toString` would turn them into U+FFFD),
 *   - a `\uD800`-style escape of a lone surrogate (its UTF-8 encoding would
 *     again be U+FFFD: the stored bytes would not be what the client sent),
 *   - the same name twice in one object (`JSON.parse` keeps the last one, so
 *     `{"ops": [...], "ops": []}` would silently drop operations).
 *
 * How: `JSON.parse` does the parsing and the syntax errors; then one pass over
 * the (now known valid) text checks names and escapes. Names are compared
 * after unescaping (`"o\u0070s"` is `"ops"`).
 */
import { isUtf8 } from 'node:buffer';
import { ImpulseError, type ErrorCode } from '../errors.js';

/** Objects with more names than this switch from a list to a set for the duplicate check. */
const NAMES_LISTED_MAX = 8;

/** Parses `body` as strict JSON (see above); any failure is an `ImpulseError` with `errorCode`. */
export function parseStrictJson(body: Buffer, errorCode: ErrorCode, what: string): unknown {
  if (!isUtf8(body)) throw new ImpulseError(errorCode, `${what} is not valid UTF-8`);
  const text = body.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ImpulseError(errorCode, `${what} is not JSON: ${(error as Error).message}`);
  }
  const problem = findNameOrEscapeProblem(text);
  if (problem !== undefined) throw new ImpulseError(errorCode, `${what}: ${problem}`);
  return value;
}

/**
 * One pass over valid JSON `text`: the first duplicate name in an object or
 * lone-surrogate escape in a string, described, or `undefined`. Each open
 * container has one stack slot: the names seen so far for an object (a list,
 * or a set once it grows), `null` for an array.
 */
export function findNameOrEscapeProblem(text: string): string | undefined {
  const stack: Array<string[] | Set<string> | null> = [];
  let expectName = false;
  // Most of a document is string contents without escapes: jump over them with indexOf, and walk
  // character by character only through strings that contain a backslash.
  let nextBackslash = text.indexOf('\\');
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (char === 0x22 /* " */) {
      const start = i;
      let end = text.indexOf('"', i + 1);
      const escaped = nextBackslash !== -1 && nextBackslash < end;
      if (escaped) {
        end = endOfEscapedString(text, nextBackslash);
        if (end < 0) return `lone surrogate \\u${text.slice(-end, -end + 4)} at character ${-end - 2}`;
        nextBackslash = text.indexOf('\\', end);
      }
      i = end;
      if (expectName) {
        expectName = false;
        const name = escaped ? (JSON.parse(text.slice(start, end + 1)) as string) : text.slice(start + 1, end);
        if (!addName(stack, name)) return `name ${JSON.stringify(name.slice(0, 32))} appears twice in one object`;
      }
    } else if (char === 0x7b /* { */) {
      stack.push([]);
      expectName = true;
    } else if (char === 0x5b /* [ */) {
      stack.push(null);
    } else if (char === 0x7d /* } */ || char === 0x5d /* ] */) {
      stack.pop();
    } else if (char === 0x2c /* , */) {
      expectName = stack.length > 0 && stack[stack.length - 1] !== null;
    }
  }
  return undefined;
}

/**
 * The index of the closing quote of the string whose first backslash is at
 * `i`, or, for an escape of a lone surrogate, minus the index of its four hex
 * digits.
 */
function endOfEscapedString(text: string, i: number): number {
  for (; ; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) return i;
    if (c !== 0x5c /* \ */) continue;
    if (text.charCodeAt(i + 1) !== 0x75 /* u */) {
      i++;
      continue;
    }
    const unit = parseInt(text.slice(i + 2, i + 6), 16);
    if (unit >= 0xdc00 && unit <= 0xdfff) return -(i + 2);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 6) === 0x5c && text.charCodeAt(i + 7) === 0x75 ? parseInt(text.slice(i + 8, i + 12), 16) : -1;
      if (!(next >= 0xdc00 && next <= 0xdfff)) return -(i + 2);
      i += 6;
    }
    i += 5;
  }
}

/** Records `name` in the innermost object; false if it was there already. */
function addName(stack: Array<string[] | Set<string> | null>, name: string): boolean {
  const names = stack[stack.length - 1]!;
  if (Array.isArray(names)) {
    if (names.includes(name)) return false;
    names.push(name);
    if (names.length > NAMES_LISTED_MAX) stack[stack.length - 1] = new Set(names);
    return true;
  }
  if (names!.has(name)) return false;
  names!.add(name);
  return true;
}

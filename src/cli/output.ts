/**
 * How the client commands show bytes and read them back.
 *
 * Keys and values are bytes. In text, a byte string that is valid UTF-8 with
 * no tab, newline or carriage return, and that does not itself start with
 * `base64:`, is shown as it is; anything else as `base64:<standard base64>`.
 * Every key argument (`get`, `put`, `del`, `--start`, `--end`, `--prefix`,
 * `batch` lines) accepts that form back, so what `scan` prints can be pasted
 * into the next command, binary keys included.
 */
import { decodeBase64 } from '../protocol/codec.js';
import { UsageError } from './exit-codes.js';

const BASE64_PREFIX = 'base64:';

export type OutputFormat = 'text' | 'json';

/** The bytes a key (or value) argument names: `base64:...` is decoded, anything else taken as UTF-8. */
export function bytesArgument(text: string, what = 'key'): Buffer {
  if (!text.startsWith(BASE64_PREFIX)) return Buffer.from(text, 'utf8');
  try {
    return decodeBase64(text.slice(BASE64_PREFIX.length), 'IMPULSE_ERR_CONFIG_INVALID', what);
  } catch {
    throw new UsageError(`${what} ${JSON.stringify(text.slice(0, 64))} starts with "base64:" but the rest is not standard base64`);
  }
}

/** `bytes` as one line of text that `bytesArgument` reads back to the same bytes. */
export function show(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  const plain = Buffer.from(text, 'utf8').equals(bytes) && !/[\t\n\r]/.test(text) && !text.startsWith(BASE64_PREFIX);
  return plain ? text : `${BASE64_PREFIX}${bytes.toString('base64')}`;
}

/** The `-o` flag's value, checked. */
export function outputFormat(text: string | undefined, json: boolean | undefined): OutputFormat {
  if (json) return 'json';
  if (text === undefined || text === 'text') return 'text';
  if (text === 'json') return 'json';
  throw new UsageError(`-o must be json or text, not ${JSON.stringify(text)}`);
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

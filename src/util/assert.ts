/**
 * Assertions for invariants. A failed assertion is a bug in impulse, not an
 * operating error: it throws `AssertionError` loudly with the values that broke
 * it. Expected failures (bad input, I/O errors, corruption) are `ImpulseError`s
 * from `src/errors.ts` instead.
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

/** Throws `AssertionError` when `condition` is false. `details` are printed with the message. */
export function assert(condition: unknown, message: string, ...details: unknown[]): asserts condition {
  if (!condition) {
    const rendered = details.length === 0 ? '' : ' ' + details.map(describe).join(' ');
    throw new AssertionError(`assertion failed: ${message}${rendered}`);
  }
}

/** Marks code that must never run; TypeScript checks exhaustiveness through `never`. */
export function unreachable(value: never, message = 'unreachable'): never {
  throw new AssertionError(`${message}: ${describe(value)}`);
}

function describe(value: unknown): string {
  if (value instanceof Uint8Array) return `<${value.length} bytes ${Buffer.from(value).toString('hex').slice(0, 64)}>`;
  try {
    return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    return String(value);
  }
}

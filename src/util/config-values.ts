/**
 * Validation of configuration values (flags), shared by every command: a bad
 * value becomes IMPULSE_ERR_CONFIG_INVALID with one sentence naming the flag,
 * and the CLI exits with status 2.
 */
import { ImpulseError } from '../errors.js';

/** `text` as an integer in [min, max], or a config error naming `flag`. */
export function integerValue(flag: string, text: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw configInvalid(`${flag} must be an integer from ${min} to ${max}; got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

export function configInvalid(message: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', message);
}

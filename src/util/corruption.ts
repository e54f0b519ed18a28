import { ImpulseError } from '../errors.js';

/**
 * The error every checksum or structure failure on disk becomes, in every
 * engine and the Raft log: IMPULSE_ERR_ENGINE_CORRUPTION, naming the file (and
 * the component) so an operator knows what is damaged.
 */
export function corruption(component: string, file: string, detail: string): ImpulseError {
  return new ImpulseError('IMPULSE_ERR_ENGINE_CORRUPTION', `${component}: ${file}: ${detail}`);
}

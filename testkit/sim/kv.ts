/**
 * The key-value state machine the simulator replicates: put, get, delete and
 * compare-and-set over string keys and values, applied from committed
 * entries. Commands travel through the Raft log as JSON bytes.
 */
import type { KvInput, KvOutput } from '../check/linearizability.js';

/** A write as it is stored in the log: who asked (for matching answers to requests) and what. */
export interface KvCommand {
  readonly clientId: number;
  readonly requestId: number;
  readonly input: Exclude<KvInput, { kind: 'get' }>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

/** Decodes a normal entry's payload; null for the leader's empty no-op. */
export function decodeCommand(data: Uint8Array): KvCommand | null {
  if (data.length === 0) return null;
  return JSON.parse(decoder.decode(data)) as KvCommand;
}

export class KvStateMachine {
  private readonly values = new Map<string, string>();

  apply(input: KvCommand['input']): KvOutput {
    switch (input.kind) {
      case 'put':
        this.values.set(input.key, input.value);
        return { kind: 'put' };
      case 'delete':
        this.values.delete(input.key);
        return { kind: 'delete' };
      case 'cas': {
        const current = this.values.get(input.key) ?? null;
        if (current !== input.expected) return { kind: 'cas', ok: false };
        this.values.set(input.key, input.value);
        return { kind: 'cas', ok: true };
      }
    }
  }

  get(key: string): string | null {
    return this.values.get(key) ?? null;
  }

  /** Serialized state, keys sorted so equal states give equal bytes. */
  snapshot(): Uint8Array {
    const pairs = [...this.values.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return encoder.encode(JSON.stringify(pairs));
  }

  static fromSnapshot(data: Uint8Array | null): KvStateMachine {
    const machine = new KvStateMachine();
    if (data !== null && data.length > 0) {
      for (const [key, value] of JSON.parse(decoder.decode(data)) as [string, string][]) machine.values.set(key, value);
    }
    return machine;
  }
}

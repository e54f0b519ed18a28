/**
 * A plain model of the key-value state machine (src/kv/state-machine.ts):
 * maps and loops, no engine, no encoding. The state machine must produce the
 * same results, contents and revisions for the same entries. Written from the
 * rules in the docs (src/kv/README.md), not from the implementation:
 *   - a command's conditions see the state before it; any failing one makes
 *     it a no-op whose result names the first failing op, its key and current
 *     revision (null when absent);
 *   - every key a successful command writes gets the command's index;
 *   - a session (client, seq) applied before answers with its first result;
 *     a seq below the client's floor is refused as expired; the floor rises to
 *     ackedBelow and to seq - window + 1; a new client beyond `clientsMax`
 *     evicts the client whose last write has the smallest index.
 */
import type { KvCommand } from '../../src/kv/command.js';
import type { ApplyEntry } from '../../src/kv/state-machine.js';

export interface ModelValue {
  readonly value: Buffer;
  readonly revision: number;
}

/** Results the way the model sees them; errors by code only. */
export type ModelResult =
  | { readonly ok: true; readonly revision: number }
  | { readonly ok: false; readonly failed: { readonly op: number; readonly key: string; readonly revision: number | null } }
  | { readonly ok: false; readonly error: string };

interface ModelSession {
  floor: number;
  lastIndex: number;
  results: Map<number, ModelResult>;
}

export class KvModel {
  /** hex key → value and revision. */
  readonly data = new Map<string, ModelValue>();
  readonly metadata = new Map<string, Buffer>();
  appliedIndex = 0;
  private readonly sessions = new Map<string, ModelSession>();

  constructor(private readonly session: { windowSeqs: number; clientsMax: number }) {}

  revisionOf(key: Uint8Array): number | null {
    return this.data.get(Buffer.from(key).toString('hex'))?.revision ?? null;
  }

  /** Applies one entry; `command` must already be decoded. Returns the expected result. */
  apply(entry: ApplyEntry, command?: KvCommand): ModelResult {
    if (entry.index !== this.appliedIndex + 1) throw new Error(`model: entry ${entry.index} after ${this.appliedIndex}`);
    this.appliedIndex = entry.index;
    if (entry.type === 'noop') return { ok: true, revision: entry.index };
    if (entry.type === 'refused') return { ok: false, error: entry.error.code };
    if (entry.type === 'meta') {
      // Every value of the entry is set, or (a name not 1-128 of [A-Za-z0-9._-]) none.
      const values = [{ name: entry.name, value: entry.value }, ...(entry.more ?? [])];
      if (values.some(({ name }) => !/^[A-Za-z0-9._-]{1,128}$/.test(name))) return { ok: false, error: 'IMPULSE_ERR_COMMAND_INVALID' };
      for (const { name, value } of values) {
        if (value === null) this.metadata.delete(name);
        else this.metadata.set(name, Buffer.from(value));
      }
      return { ok: true, revision: entry.index };
    }
    if (command === undefined) throw new Error('model: a command entry needs its decoded command');
    return this.applyCommand(entry.index, command);
  }

  private applyCommand(index: number, command: KvCommand): ModelResult {
    const { session } = command;
    if (session !== undefined) {
      const known = this.sessions.get(session.clientId);
      if (known !== undefined && session.seq < known.floor) return { ok: false, error: 'IMPULSE_ERR_SESSION_EXPIRED' };
      const earlier = known?.results.get(session.seq);
      if (earlier !== undefined) return earlier;
    }
    let result: ModelResult | undefined;
    command.ops.forEach((op, position) => {
      if (result !== undefined || op.condition === undefined) return;
      const revision = this.revisionOf(op.key);
      const holds = 'ifRevision' in op.condition ? revision === op.condition.ifRevision : revision === null;
      if (!holds) result = { ok: false, failed: { op: position, key: Buffer.from(op.key).toString('hex'), revision } };
    });
    if (result === undefined) {
      for (const op of command.ops) {
        const key = Buffer.from(op.key).toString('hex');
        if (op.type === 'put') this.data.set(key, { value: Buffer.from(op.value), revision: index });
        else this.data.delete(key);
      }
      result = { ok: true, revision: index };
    }
    if (session !== undefined) this.remember(session.clientId, session.seq, session.ackedBelow, index, result);
    return result;
  }

  private remember(clientId: string, seq: number, ackedBelow: number | undefined, index: number, result: ModelResult): void {
    let state = this.sessions.get(clientId);
    if (state === undefined) {
      if (this.sessions.size >= this.session.clientsMax) {
        const oldest = [...this.sessions.entries()].sort((a, b) => a[1].lastIndex - b[1].lastIndex)[0]!;
        this.sessions.delete(oldest[0]);
      }
      state = { floor: 1, lastIndex: index, results: new Map() };
      this.sessions.set(clientId, state);
    }
    state.results.set(seq, result);
    state.lastIndex = index;
    state.floor = Math.max(state.floor, ackedBelow ?? 1, seq - this.session.windowSeqs + 1);
    for (const remembered of [...state.results.keys()]) if (remembered < state.floor) state.results.delete(remembered);
  }

  /** Every entry, sorted by key bytes, as `hex=valuehex@revision` strings. */
  dump(): string[] {
    return [...this.data.entries()]
      .sort((a, b) => Buffer.compare(Buffer.from(a[0], 'hex'), Buffer.from(b[0], 'hex')))
      .map(([key, { value, revision }]) => `${key}=${value.toString('hex')}@${revision}`);
  }
}

/**
 * The key-value state machine the simulator replicates — put, delete and
 * compare-and-set over string keys and values — as a `RaftStateMachine`
 * (src/raft/driver-seams.ts) with a crash model of its own:
 *
 *   - `apply` changes the visible state at once; the new state (values,
 *     applied index, membership) becomes DURABLE only when a sync scheduled
 *     by the simulator completes, batch by batch, like an engine write that
 *     carries the applied index in the same atomic batch. A crash keeps the
 *     durable state plus a random prefix of the unsynced batches, so a node
 *     restarts at its durable applied index, often behind what it had applied.
 *   - `stageSnapshot` is durable at once (the contract); `installSnapshot`
 *     replaces the whole state durably. An image is JSON cut into chunks of
 *     `SIM_SNAPSHOT_CHUNK_BYTES`, which the simulated network streams.
 *
 * Commands travel through the Raft log as JSON bytes. Their types are the
 * simulator's own; the clients translate them for the checker.
 */
import type { Random } from '../../src/util/random.js';
import type { RaftStateMachine, SnapshotImage } from '../../src/raft/driver-seams.js';
import type { ConfState, Entry, NodeId, SnapshotMeta } from '../../src/raft/types.js';

export type KvWrite =
  | { readonly kind: 'put'; readonly key: string; readonly value: string }
  | { readonly kind: 'delete'; readonly key: string }
  | { readonly kind: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string };

/** A write as it is stored in the log: who asked (for tracing) and what. */
export interface KvCommand {
  readonly clientId: number;
  readonly requestId: number;
  readonly write: KvWrite;
}

/** The result of applying one entry: what the write did (null for the no-op and conf changes). */
export type KvResult = { readonly kind: 'put' } | { readonly kind: 'delete' } | { readonly kind: 'cas'; readonly ok: boolean } | null;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

/** Decoded payloads: in the simulator every node holds the same entry objects, so each decodes once. */
const decoded = new WeakMap<Uint8Array, KvCommand>();

/** Decodes a normal entry's payload; null for the leader's empty no-op. */
export function decodeCommand(data: Uint8Array): KvCommand | null {
  if (data.length === 0) return null;
  let command = decoded.get(data);
  if (command === undefined) {
    command = JSON.parse(decoder.decode(data)) as KvCommand;
    decoded.set(data, command);
  }
  return command;
}

/** The replicated state: values, the applied point, the membership. Plain data; copied, never shared. */
export interface KvState {
  values: Map<string, string>;
  appliedIndex: number;
  appliedTerm: number;
  conf: ConfState;
  removed: NodeId[];
}

export function emptyKvState(conf: ConfState): KvState {
  return { values: new Map(), appliedIndex: 0, appliedTerm: 0, conf, removed: [] };
}

function copyState(state: KvState): KvState {
  return { values: new Map(state.values), appliedIndex: state.appliedIndex, appliedTerm: state.appliedTerm, conf: state.conf, removed: [...state.removed] };
}

/** Applies one entry to `state`; returns its result. */
export function applyEntry(state: KvState, entry: Entry): KvResult {
  state.appliedIndex = entry.index;
  state.appliedTerm = entry.term;
  if (entry.kind === 'conf-change') {
    state.conf = entry.confState;
    if (entry.change.type === 'remove-node' && !state.removed.includes(entry.change.nodeId)) state.removed.push(entry.change.nodeId);
    return null;
  }
  const command = decodeCommand(entry.data);
  if (command === null) return null;
  const write = command.write;
  switch (write.kind) {
    case 'put':
      state.values.set(write.key, write.value);
      return { kind: 'put' };
    case 'delete':
      state.values.delete(write.key);
      return { kind: 'delete' };
    case 'cas': {
      if ((state.values.get(write.key) ?? null) !== write.expected) return { kind: 'cas', ok: false };
      state.values.set(write.key, write.value);
      return { kind: 'cas', ok: true };
    }
  }
}

/**
 * A digest of the values and membership (not the applied index): equal states
 * give equal digests. FNV-1a over the sorted pairs, the configuration and the
 * removed ids: cheap (it runs after every apply batch), and the states are a
 * few keys, so collisions are not a practical concern here.
 */
export function digestState(state: KvState): string {
  let h = 0x811c9dc5;
  const mix = (text: string): void => {
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
    h = Math.imul(h ^ 0xff, 0x01000193) >>> 0; // a separator no string character can forge
  };
  for (const key of [...state.values.keys()].sort()) {
    mix(key);
    mix(state.values.get(key)!);
  }
  mix(`${state.conf.voters.join(',')}|${state.conf.learners.join(',')}|${[...state.removed].sort((a, b) => a - b).join(',')}`);
  return h.toString(16);
}

/** Bytes per chunk of a snapshot image: small, so images travel as streams of many chunks. */
export const SIM_SNAPSHOT_CHUNK_BYTES = 64;

/** The image of `state` as chunks of at most `chunkBytes` (one empty chunk for an empty image). */
function encodeImage(state: KvState, chunkBytes: number): readonly Uint8Array[] {
  const data = encoder.encode(JSON.stringify({ values: [...state.values.entries()], conf: state.conf, removed: state.removed }));
  if (data.length <= chunkBytes) return [data];
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += chunkBytes) chunks.push(data.subarray(at, Math.min(at + chunkBytes, data.length)));
  return chunks;
}

function decodeImage(meta: SnapshotMeta, chunks: readonly Uint8Array[]): KvState {
  const data = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.length;
  }
  const parsed = JSON.parse(decoder.decode(data)) as { values: [string, string][]; conf: ConfState; removed: NodeId[] };
  return { values: new Map(parsed.values), appliedIndex: meta.index, appliedTerm: meta.term, conf: parsed.conf, removed: parsed.removed };
}

/** Hooks the simulator's invariant checks observe (never used to decide anything). */
export interface KvObserver {
  applied(entries: readonly Entry[], appliedBefore: number): void;
  installed(meta: SnapshotMeta, appliedBefore: number): void;
}

/** A snapshot image in the simulator: the JSON image in chunks, as the simulated network streams it. */
export type SimImagePayload = readonly Uint8Array[];

export class KvStateMachine implements RaftStateMachine<KvResult, SimImagePayload> {
  private visible: KvState;
  private durable: KvState;
  private unsynced: KvState[] = [];
  private staged: SnapshotImage<SimImagePayload> | null = null;
  observer: KvObserver | null = null;

  constructor(
    bootstrapConf: ConfState,
    /** Schedules the durable write of one apply batch (the simulator: after a random delay). */
    private readonly scheduleSync: (complete: () => void) => void,
    private readonly snapshotChunkBytes = SIM_SNAPSHOT_CHUNK_BYTES,
  ) {
    this.durable = emptyKvState(bootstrapConf);
    this.visible = copyState(this.durable);
  }

  get state(): Readonly<KvState> {
    return this.visible;
  }

  get(key: string): string | null {
    return this.visible.values.get(key) ?? null;
  }

  apply(entries: readonly Entry[], done: (error: Error | null, results?: readonly KvResult[]) => void): void {
    const before = this.visible.appliedIndex;
    const results = entries.map((entry) => applyEntry(this.visible, entry));
    this.observer?.applied(entries, before);
    const batch = copyState(this.visible);
    this.unsynced.push(batch);
    this.scheduleSync(() => {
      // Batches become durable in order: this one, and every one before it.
      const at = this.unsynced.indexOf(batch);
      if (at < 0) return; // lost in a crash, or covered by a later install
      this.durable = batch;
      this.unsynced = this.unsynced.slice(at + 1);
    });
    done(null, results);
  }

  durableAppliedIndex(): number {
    return this.durable.appliedIndex;
  }

  snapshot(done: (error: Error | null, image?: SnapshotImage<SimImagePayload>) => void): void {
    const state = this.visible;
    done(null, { meta: { index: state.appliedIndex, term: state.appliedTerm, confState: state.conf }, payload: encodeImage(state, this.snapshotChunkBytes) });
  }

  stageSnapshot(image: SnapshotImage<SimImagePayload>, done: (error: Error | null) => void): void {
    this.staged = image;
    done(null);
  }

  installSnapshot(meta: SnapshotMeta, done: (error: Error | null) => void): void {
    const staged = this.staged;
    if (staged === null || staged.meta.index !== meta.index || staged.meta.term !== meta.term) {
      done(new Error(`no staged image at ${meta.index}/${meta.term} (staged: ${staged === null ? 'none' : `${staged.meta.index}/${staged.meta.term}`})`));
      return;
    }
    const before = this.visible.appliedIndex;
    this.visible = decodeImage(meta, staged.payload);
    this.durable = copyState(this.visible);
    this.unsynced = [];
    this.observer?.installed(meta, before);
    done(null);
  }

  /** Power loss: the durable state plus a random prefix of the unsynced batches survives. */
  crash(random: Random): void {
    const keep = random.int(this.unsynced.length + 1);
    if (keep > 0) this.durable = this.unsynced[keep - 1]!;
    this.unsynced = [];
    this.visible = copyState(this.durable);
  }
}

/**
 * An engine for tests of the layers around engines (the base's group commit,
 * the state machine's failure handling): it keeps its data in a memory
 * engine and hands every `_write` to `onWrite`, which decides when (and
 * whether) the write reaches the data, and may fail before or after it.
 */
import { Engine, type EngineOptions, type EngineStats, type Entry, type KeyRange, type WriteOp } from '../../src/storage/engine.js';
import { MemoryEngine } from '../../src/storage/memory/memory-engine.js';

export interface DelegatingEngineOptions extends EngineOptions {
  /** What `supports.durable` says (the base syncs only durable engines). Default false. */
  readonly durable?: boolean;
  /** Called for every `_write`; `apply()` writes `ops` to the data. Default: apply at once. */
  readonly onWrite?: (ops: readonly WriteOp[], sync: boolean, apply: () => Promise<void>) => Promise<void>;
}

export class DelegatingEngine extends Engine {
  readonly name = 'delegating';
  readonly supports: { readonly durable: boolean; readonly cheapKeyCount: false };
  private readonly inner: MemoryEngine;
  private readonly onWrite: NonNullable<DelegatingEngineOptions['onWrite']>;

  constructor(options: DelegatingEngineOptions = {}) {
    super(options);
    this.supports = { durable: options.durable ?? false, cheapKeyCount: false };
    this.inner = new MemoryEngine({ ...(options.limits ? { limits: options.limits } : {}) });
    this.onWrite = options.onWrite ?? ((_ops, _sync, apply) => apply());
  }

  protected async _open(): Promise<void> {
    await this.inner.open();
  }

  protected _get(key: Buffer): Promise<Buffer | undefined> {
    return this.inner.get(key);
  }

  protected _write(ops: readonly WriteOp[], sync: boolean): Promise<void> {
    return this.onWrite(ops, sync, () => this.inner.batch(ops));
  }

  protected _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    return this.inner.range({
      ...(range.lower ? { [range.lowerInclusive ? 'gte' : 'gt']: range.lower } : {}),
      ...(range.upper ? { [range.upperInclusive ? 'lte' : 'lt']: range.upper } : {}),
      reverse,
      limit,
    });
  }

  protected async _stats(): Promise<EngineStats> {
    return { figures: {} };
  }

  protected _close(): Promise<void> {
    return this.inner.close();
  }
}

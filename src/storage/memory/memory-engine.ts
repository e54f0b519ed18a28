/**
 * The `memory` engine: the seed's hash-map engine. A `Map` answers point
 * operations in O(1); an `OrderedMap` (skip list) beside it answers range
 * queries in key order. Keys are held as latin1 strings, whose JavaScript
 * string order is exactly unsigned byte order. Not durable: everything is gone
 * when the process exits, and `/status` says so.
 */
import { Engine, type EngineOptions, type EngineStats, type Entry, type KeyRange, type WriteOp, aboveLower, belowUpper } from '../engine.js';
import { OrderedMap } from '../../util/ordered-map.js';

export class MemoryEngine extends Engine {
  readonly name = 'memory';
  readonly supports = { durable: false, cheapKeyCount: true } as const;

  private readonly values = new Map<string, Buffer>();
  private readonly order = new OrderedMap<Buffer>();
  private valueBytes = 0;

  constructor(options: EngineOptions = {}) {
    super(options);
  }

  protected async _open(): Promise<void> {}

  protected async _get(key: Buffer): Promise<Buffer | undefined> {
    return this._getSync(key);
  }

  protected override _getSync(key: Buffer): Buffer | undefined {
    return this.values.get(key.toString('latin1'));
  }

  protected override _getSyncLatin1(keyLatin1: string): Buffer | undefined {
    return this.values.get(keyLatin1);
  }

  protected async _write(ops: readonly WriteOp[]): Promise<void> {
    // Nothing below can fail, so applying in order is atomic.
    for (const op of ops) {
      const key = Buffer.from(op.key.buffer, op.key.byteOffset, op.key.byteLength).toString('latin1');
      const previous = this.values.get(key);
      if (previous !== undefined) this.valueBytes -= key.length + previous.length;
      if (op.type === 'put') {
        // Copy: the caller may reuse its buffer after the write is acknowledged.
        const value = Buffer.from(op.value);
        this.values.set(key, value);
        this.order.set(key, value);
        this.valueBytes += key.length + value.length;
      } else if (previous !== undefined) {
        this.values.delete(key);
        this.order.delete(key);
      }
    }
  }

  protected async _range(range: KeyRange, reverse: boolean, limit: number): Promise<Entry[]> {
    const entries: Entry[] = [];
    if (!reverse) {
      const from = range.lower?.toString('latin1');
      for (const [key, value] of this.order.ascending(from, !range.lowerInclusive)) {
        const keyBytes = Buffer.from(key, 'latin1');
        if (!belowUpper(keyBytes, range)) break;
        entries.push({ key: keyBytes, value });
        if (entries.length === limit) break;
      }
    } else {
      const from = range.upper?.toString('latin1');
      for (const [key, value] of this.order.descending(from, !range.upperInclusive)) {
        const keyBytes = Buffer.from(key, 'latin1');
        if (!aboveLower(keyBytes, range)) break;
        entries.push({ key: keyBytes, value });
        if (entries.length === limit) break;
      }
    }
    return entries;
  }

  protected async _stats(): Promise<EngineStats> {
    return { keyCount: this.values.size, figures: { memory_bytes: this.valueBytes } };
  }

  protected async _close(): Promise<void> {
    this.values.clear();
    this.order.clear();
  }
}

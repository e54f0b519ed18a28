/**
 * The `KvService` of a member that joined (`--join`): whether its cluster is
 * sharded is known only once the meta group's snapshot arrives with the shard
 * map (a joiner has no `--split-keys`), which is after the member opened. Each
 * request goes to the sharded service once the map is there, else to the
 * meta group's (the whole store of a cluster without shards).
 */
import type { KvService } from '../service/kv-service.js';
import type { ShardGroups } from './shard-groups.js';
import type { ShardedKvService } from './sharded-kv-service.js';

export class JoinedKvService implements KvService {
  readonly limits;

  constructor(
    private readonly meta: KvService,
    private readonly sharded: ShardedKvService,
    private readonly shards: ShardGroups,
  ) {
    this.limits = meta.limits;
  }

  private get service(): KvService {
    return this.shards.sharded ? this.sharded : this.meta;
  }

  get(...args: Parameters<KvService['get']>): ReturnType<KvService['get']> {
    return this.service.get(...args);
  }

  range(...args: Parameters<KvService['range']>): ReturnType<KvService['range']> {
    return this.service.range(...args);
  }

  write(...args: Parameters<KvService['write']>): ReturnType<KvService['write']> {
    return this.service.write(...args);
  }

  status(): ReturnType<KvService['status']> {
    return this.service.status();
  }

  health(): ReturnType<KvService['health']> {
    return this.service.health();
  }

  digest(): ReturnType<KvService['digest']> {
    return this.service.digest();
  }

  /** Closes the shard groups and the meta group (the sharded service closes both). */
  close(): Promise<void> {
    return this.sharded.close();
  }
}

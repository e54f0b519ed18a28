/**
 * Shard routing end to end: a three-member sharded cluster in one process
 * (split keys g, p: shards 2, 3, 4), each member behind a real HTTP server,
 * and a client with `shardRouting`.
 *
 *   - the client loads the map once and sends each key straight to its
 *     shard's leader, naming the shard and epoch;
 *   - after the meta group commits a newer map (shard 3 changed: epoch 2), a
 *     request routed by the old map is answered 421 IMPULSE_ERR_SHARD_STALE
 *     with the shard that holds the key now; the client refreshes once and
 *     its write and read go through; writes and reads through the service
 *     with an old route are refused before anything is proposed;
 *   - a route newer than any map is 503 IMPULSE_ERR_UNAVAILABLE (the member
 *     waited for its meta group's read point first); a malformed header is
 *     400 IMPULSE_ERR_SHARD_ROUTE_INVALID;
 *   - when the member leading a shard is gone, the client's next read and
 *     write of that shard go to another replica (no refresh needed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { ImpulseServer } from '../api/server.js';
import { isImpulseError } from '../errors.js';
import { encodeClusterCommand } from '../cluster/log-entries.js';
import { changeReplicas, shardFor } from '../shard/shard-map.js';
import { InProcessCluster, until } from '../../testkit/cluster/in-process.js';
import { freePorts } from '../../testkit/process/ports.js';
import { ImpulseClient } from './client.js';

describe('a client routing by the shard map', () => {
  let cluster: InProcessCluster;
  let ports: number[];
  const servers: ImpulseServer[] = [];
  let client: ImpulseClient;

  before(async () => {
    ports = await freePorts(3);
    cluster = await InProcessCluster.start(3, { flags: { splitKeys: 'g,p' }, clientPorts: ports });
    for (const id of [1, 2, 3]) {
      const member = cluster.member(id);
      const server = new ImpulseServer({ service: member.service, cluster: member.admin, logger: pino({ level: 'silent' }), version: 'test' });
      await server.listen(ports[id - 1]!, '127.0.0.1');
      servers.push(server);
    }
    await until('every member knows a leader of every shard and every client URL', () =>
      [1, 2, 3].every((id) => {
        const member = cluster.member(id);
        return member.shards.map !== undefined && [2, 3, 4].every((shard) => (member.groups.get(shard)?.group.leader ?? 0) !== 0) && member.admin.view().members.every((view) => view.clientUrl !== null);
      }),
    );
    client = new ImpulseClient({ endpoint: `http://127.0.0.1:${ports[0]}`, shardRouting: true });
  });
  after(async () => {
    client?.close();
    for (const server of servers) await server.close();
    await cluster?.close();
  });

  it("sends each key to its shard's leader, loading the map once", async () => {
    for (const key of ['apple', 'house', 'zebra']) {
      await client.put(key, `v-${key}`);
      assert.equal((await client.get(key))?.toString(), `v-${key}`);
      const map = cluster.member(1).shards.map!;
      const shard = shardFor(map, Buffer.from(key));
      const leader = cluster.member(shard.replicas[0]!).groups.get(shard.id)!.group.leader;
      const target = await client.router!.target(Buffer.from(key), 0);
      assert.deepEqual(target?.route, { shard: shard.id, epoch: 1 });
      assert.equal(target?.origin.port, String(ports[leader - 1]), `shard ${shard.id} is led by ${leader}`);
    }
    assert.equal(client.router!.refreshes, 1);
  });

  it('answers a route by an older map with the shard that holds the key now; the client refreshes once and retries', async () => {
    const old = cluster.member(1).shards.map!;
    const middle = old.shards.find((shard) => shard.id === 3)!;
    const newer = changeReplicas(old, 3, middle.replicas); // as a replica change does: shard 3 at epoch 2
    await cluster.member(2).groups.get(1)!.requests.write(encodeClusterCommand({ type: 'shard-map', map: newer }), true);
    await until('every member applied map version 2', () => [1, 2, 3].every((id) => cluster.member(id).shards.map?.version === 2));

    const raw = await fetch(`http://127.0.0.1:${ports[2]}/kv/house`, { method: 'PUT', body: 'stale', headers: { 'impulse-shard': '3:1' } });
    assert.equal(raw.status, 421);
    const body = (await raw.json()) as { error: Record<string, unknown> };
    assert.deepEqual({ ...body.error, message: undefined }, { code: 'IMPULSE_ERR_SHARD_STALE', message: undefined, shard: 3, epoch: 2, start: Buffer.from('g').toString('hex'), end: Buffer.from('p').toString('hex'), replicas: middle.replicas.join(','), mapVersion: 2 });
    const service = cluster.member(1).service;
    await assert.rejects(service.write({ ops: [{ type: 'put', key: Buffer.from('house'), value: Buffer.from('stale') }] }, { route: { shard: 2, epoch: 1 } }), (error) => isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE') && error.details['shard'] === 3);
    await assert.rejects(service.get(Buffer.from('house'), { route: { shard: 3, epoch: 1 } }), (error) => isImpulseError(error, 'IMPULSE_ERR_SHARD_STALE'));
    assert.equal((await service.get(Buffer.from('house')))?.value.toString(), 'v-house', 'no stale write applied');

    await client.put('house', 'after-change');
    assert.equal(client.router!.refreshes, 2);
    assert.equal(client.router!.mapVersion, 2);
    assert.deepEqual((await client.router!.target(Buffer.from('house'), 0))?.route, { shard: 3, epoch: 2 });
    assert.equal((await client.get('house'))?.toString(), 'after-change');
    assert.equal((await client.get('apple'))?.toString(), 'v-apple', 'shards the change did not touch keep their routes');
    assert.equal(client.router!.refreshes, 2);
  });

  it('refuses a route newer than any map (after catching up) and a malformed route header', async () => {
    const ahead = await fetch(`http://127.0.0.1:${ports[1]}/kv/house`, { headers: { 'impulse-shard': '3:99' } });
    assert.equal(ahead.status, 503);
    assert.equal(((await ahead.json()) as { error: { code: string } }).error.code, 'IMPULSE_ERR_UNAVAILABLE');
    for (const header of ['3', '3:0', 'x:1', '3:1:2', '-3:1']) {
      const bad = await fetch(`http://127.0.0.1:${ports[1]}/kv/house`, { headers: { 'impulse-shard': header } });
      assert.equal(bad.status, 400, header);
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'IMPULSE_ERR_SHARD_ROUTE_INVALID', header);
    }
  });

  it("goes to the shard's next replica when its leader's member is gone, for reads at once and for writes on their retry", async () => {
    const target = await client.router!.target(Buffer.from('zebra'), 0);
    const gone = ports.indexOf(Number(target!.origin.port)) + 1;
    await servers[gone - 1]!.close(); // closes that member's service: its HTTP port refuses, its groups stop
    const refreshes = client.router!.refreshes;
    assert.equal((await client.get('zebra'))?.toString(), 'v-zebra');
    await client.put('zebra', 'after-member-gone');
    assert.equal((await client.get('zebra'))?.toString(), 'after-member-gone');
    assert.notEqual((await client.router!.target(Buffer.from('zebra'), 0))?.origin.port, String(ports[gone - 1]), 'the gone member is no longer the first choice');
    assert.equal(client.router!.refreshes, refreshes, 'an unreachable member costs no refresh');
  });
});

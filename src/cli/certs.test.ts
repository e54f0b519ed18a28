import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateCerts } from './certs.js';
import { isImpulseError } from '../errors.js';

describe('impulse certs', { timeout: 60_000 }, () => {
  it('writes a CA, node certificates naming their ids and hosts, and a client certificate; never overwrites', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-certs-test-'));
    try {
      const written = await generateCerts({ out: dir, nodes: '2', host: ['db.example.com', '10.0.0.7'], days: '30' });
      assert.deepEqual(written.sort(), ['ca.crt', 'ca.key', 'client.crt', 'client.key', 'node-1.crt', 'node-1.key', 'node-2.crt', 'node-2.key']);
      const ca = new X509Certificate(await readFile(join(dir, 'ca.crt')));
      assert.ok(ca.ca);
      for (const id of [1, 2]) {
        const node = new X509Certificate(await readFile(join(dir, `node-${id}.crt`)));
        assert.ok(node.checkIssued(ca) && node.verify(ca.publicKey), `node-${id} is signed by the CA`);
        assert.ok(!node.ca);
        for (const name of [`DNS:impulse-node-${id}`, 'DNS:localhost', 'DNS:db.example.com', 'IP Address:127.0.0.1', 'IP Address:10.0.0.7']) assert.ok(node.subjectAltName?.includes(name), `${name} in ${node.subjectAltName}`);
        assert.ok(node.checkHost('localhost') !== undefined && node.checkIP('127.0.0.1') !== undefined);
        assert.equal((await stat(join(dir, `node-${id}.key`))).mode & 0o077, 0, 'private keys are not readable by others');
      }
      const client = new X509Certificate(await readFile(join(dir, 'client.crt')));
      assert.ok(client.verify(ca.publicKey));
      assert.deepEqual(client.keyUsage, ['1.3.6.1.5.5.7.3.2']); // clientAuth only
      await assert.rejects(generateCerts({ out: dir, nodes: '2' }), (error: unknown) => isImpulseError(error) && /exists/.test(error.message));
      await assert.rejects(generateCerts({ out: join(dir, 'x'), nodes: '2', host: ['bad host'] }), (error: unknown) => isImpulseError(error) && error.code === 'IMPULSE_ERR_CONFIG_INVALID');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

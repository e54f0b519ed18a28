/**
 * Certificates for security tests, made with the same code as `impulse certs`
 * (openssl): a cluster CA with node and client certificates, and the bad ones
 * the tests must see refused — a certificate from another CA, a valid one
 * naming another node id, an expired one.
 *
 *   const pki = await TestPki.create();      // in a fresh temp directory
 *   pki.node(1)                               // { cert, key, ca } PEM buffers
 *   await pki.close();                        // removes the directory
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../../src/cli/certs.js';
import { NODE_NAME_PREFIX } from '../../src/transport/tls-socket-factory.js';

export interface PemSet {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The CA the holder trusts (the cluster CA for every set here). */
  readonly ca: Buffer;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export class TestPki {
  private constructor(
    readonly dir: string,
    private readonly sets: ReadonlyMap<string, PemSet>,
  ) {}

  /**
   * Creates, under a temp directory: the cluster CA (`ca/`), node certificates
   * for ids 1..nodes, a client certificate, and the refused ones: `foreign-<id>`
   * (another CA), `misnamed-<id>` (cluster CA, names node 99), `expired-<id>`
   * (cluster CA, expired a day ago) for id 2.
   */
  static async create(nodes = 3): Promise<TestPki> {
    const dir = await mkdtemp(join(tmpdir(), 'impulse-pki-'));
    const clusterCa = join(dir, 'ca');
    const otherCa = join(dir, 'other-ca');
    await Promise.all([mkdir(clusterCa), mkdir(otherCa)]);
    await Promise.all([createCa(clusterCa, 'impulse test CA', 30), createCa(otherCa, 'another CA', 30)]);
    const sets = new Map<string, PemSet>();
    const issue = async (name: string, nodeName: string, caDir: string, days: number): Promise<void> => {
      await issueCertificate({ dir: clusterCa, caDir, name, commonName: nodeName, dnsNames: [nodeName, 'localhost'], addresses: ['127.0.0.1'], extraHosts: [], days, usage: 'server-and-client' });
    };
    for (let id = 1; id <= nodes; id++) await issue(`node-${id}`, `${NODE_NAME_PREFIX}${id}`, clusterCa, 30);
    await issueCertificate({ dir: clusterCa, name: 'client', commonName: 'impulse-client', dnsNames: [], addresses: [], extraHosts: [], days: 30, usage: 'client' });
    await issue('foreign-2', `${NODE_NAME_PREFIX}2`, otherCa, 30);
    await issue('misnamed-2', `${NODE_NAME_PREFIX}99`, clusterCa, 30);
    await issue('expired-2', `${NODE_NAME_PREFIX}2`, clusterCa, -1);
    const names = [...Array.from({ length: nodes }, (_, i) => `node-${i + 1}`), 'client', 'foreign-2', 'misnamed-2', 'expired-2'];
    const caFile = join(clusterCa, 'ca.crt');
    const ca = await readFile(caFile);
    for (const name of names) {
      const certFile = join(clusterCa, `${name}.crt`);
      const keyFile = join(clusterCa, `${name}.key`);
      sets.set(name, { cert: await readFile(certFile), key: await readFile(keyFile), ca, certFile, keyFile, caFile });
    }
    return new TestPki(dir, sets);
  }

  /** A set by file name: 'node-1', 'client', 'foreign-2', 'misnamed-2', 'expired-2'. */
  get(name: string): PemSet {
    const set = this.sets.get(name);
    if (set === undefined) throw new Error(`no test certificate ${name}`);
    return set;
  }

  node(id: number): PemSet {
    return this.get(`node-${id}`);
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

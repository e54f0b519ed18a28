/**
 * `impulse certs`: a development CA and certificates in one command, so a
 * newcomer runs a TLS cluster without learning openssl first:
 *
 *   impulse certs --out certs --nodes 3
 *   impulse cluster --certs certs
 *   impulse --endpoint https://127.0.0.1:7071 --ca certs/ca.crt put k v
 *
 * It writes to `--out`: `ca.crt` / `ca.key` (the CA), `node-<id>.crt` /
 * `.key` for ids 1..N (CN and DNS subjectAltName `impulse-node-<id>`, which
 * the peer transport checks against the node id a member claims, plus
 * localhost, 127.0.0.1, ::1 and every `--host`; usable for serving clients
 * and for mutual TLS between members), and `client.crt` / `.key` (for
 * `--tls-client-ca`). Keys are EC P-256, mode 0600. Existing files are never
 * overwritten.
 *
 * It runs the `openssl` command (OpenSSL 1.1.1 or 3.x): Node can verify
 * certificates but has no API to issue them, and openssl is what production
 * guides (docs/security.md) use anyway, so the development and production
 * paths differ only in who keeps the CA key. The alternative, an npm X.509
 * library (@peculiar/x509, node-forge), would add a dependency for a
 * development convenience.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ImpulseError } from '../errors.js';
import { NODE_NAME_PREFIX } from '../transport/tls-socket-factory.js';
import { configInvalid, integerValue } from '../util/config-values.js';

export interface CertsFlags {
  out?: string;
  nodes?: string;
  host?: string[];
  days?: string;
}

export function addCertsCommand(program: Command): void {
  program
    .command('certs')
    .description('generate a development CA, node certificates and a client certificate (runs openssl)')
    .option('--out <dir>', 'where to write the files', 'certs')
    .option('--nodes <n>', 'node certificates for ids 1..n', '3')
    .option('--host <name>', 'another host name or address the node certificates are valid for (repeatable)', (value: string, previous: string[] = []) => [...previous, value])
    .option('--days <n>', 'validity in days', '365')
    .action(async (flags: CertsFlags) => {
      const written = await generateCerts(flags);
      process.stdout.write(`wrote ${written.length} files to ${resolve(flags.out ?? 'certs')}: ${written.join(' ')}\n` + 'these are for development: keep ca.key away from the nodes in production (docs/security.md)\n');
    });
}

/** Runs the command; resolves with the names of the files written. */
export async function generateCerts(flags: CertsFlags): Promise<string[]> {
  const out = resolve(flags.out ?? 'certs');
  const count = integerValue('--nodes', flags.nodes ?? '3', 1, 99);
  const days = integerValue('--days', flags.days ?? '365', 1, 3650);
  const hosts = flags.host ?? [];
  for (const host of hosts) if (!/^[A-Za-z0-9.:-]{1,253}$/.test(host)) throw configInvalid(`--host ${JSON.stringify(host)} is not a host name or address`);
  const nodeNames = Array.from({ length: count }, (_, i) => `node-${i + 1}`);
  const files = ['ca.crt', 'ca.key', ...nodeNames.flatMap((name) => [`${name}.crt`, `${name}.key`]), 'client.crt', 'client.key'];
  await mkdir(out, { recursive: true });
  for (const file of files) {
    if (await exists(join(out, file))) throw configInvalid(`${join(out, file)} exists; remove the old files or choose another --out`);
  }
  await createCa(out, 'impulse development CA', days);
  for (let id = 1; id <= count; id++) {
    await issueCertificate({ dir: out, name: `node-${id}`, commonName: `${NODE_NAME_PREFIX}${id}`, dnsNames: [`${NODE_NAME_PREFIX}${id}`, 'localhost'], addresses: ['127.0.0.1', '::1'], extraHosts: hosts, days, usage: 'server-and-client' });
  }
  await issueCertificate({ dir: out, name: 'client', commonName: 'impulse-client', dnsNames: [], addresses: [], extraHosts: [], days, usage: 'client' });
  return files;
}

/** Writes `<dir>/ca.crt` and `<dir>/ca.key`: a self-signed CA valid for `days`. */
export async function createCa(dir: string, commonName: string, days: number): Promise<void> {
  await openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'),
    '-subj', `/CN=${commonName}`, '-days', String(days),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

export interface CertificateSpec {
  /** Directory holding ca.crt and ca.key; the certificate goes to `<dir>/<name>.crt` and `.key`. */
  readonly dir: string;
  readonly name: string;
  readonly commonName: string;
  readonly dnsNames: readonly string[];
  readonly addresses: readonly string[];
  /** Host names or addresses, sorted into DNS or IP subjectAltNames. */
  readonly extraHosts: readonly string[];
  /** Validity from now; a negative number makes a certificate that has already expired (for tests). */
  readonly days: number;
  readonly usage: 'server-and-client' | 'client';
  /** The CA directory when it differs from `dir`. */
  readonly caDir?: string;
}

/** Issues a certificate signed by the CA in `spec.caDir ?? spec.dir`. */
export async function issueCertificate(spec: CertificateSpec): Promise<void> {
  const caDir = spec.caDir ?? spec.dir;
  const work = await mkdtemp(join(tmpdir(), 'impulse-certs-'));
  try {
    const names = [...spec.dnsNames, ...spec.extraHosts.filter((host) => isIP(host) === 0)].map((name) => `DNS:${name}`);
    const addresses = [...spec.addresses, ...spec.extraHosts.filter((host) => isIP(host) !== 0)].map((address) => `IP:${address}`);
    const extensions = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${spec.usage === 'client' ? 'clientAuth' : 'serverAuth,clientAuth'}`,
      ...(names.length + addresses.length > 0 ? [`subjectAltName=${[...names, ...addresses].join(',')}`] : []),
    ];
    await writeFile(join(work, 'ext.cnf'), extensions.join('\n') + '\n');
    const csr = join(work, 'request.csr');
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(spec.dir, `${spec.name}.key`), '-out', csr, '-subj', `/CN=${spec.commonName}`]);
    await openssl([
      'x509', '-req', '-in', csr, '-CA', join(caDir, 'ca.crt'), '-CAkey', join(caDir, 'ca.key'),
      '-set_serial', `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}`,
      '-days', String(spec.days), '-extfile', join(work, 'ext.cnf'), '-out', join(spec.dir, `${spec.name}.crt`),
    ]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Runs openssl; a missing binary or a failure becomes one sentence (exit 1). */
function openssl(args: readonly string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    execFile('openssl', args, { timeout: 30_000 }, (error, _stdout, stderr) => {
      if (error === null) return resolvePromise();
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new ImpulseError('IMPULSE_ERR_CONFIG_INVALID', 'impulse certs runs the openssl command, which is not installed (Debian/Ubuntu: apt-get install openssl)'));
      }
      reject(new ImpulseError('IMPULSE_ERR_INTERNAL', `openssl ${args[0]} failed: ${stderr.trim().split('\n').slice(-2).join(' ')}`));
    });
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

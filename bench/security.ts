/**
 * What TLS and tokens cost (issue #16): `wrk` with 100 keep-alive connections
 * over plain HTTP and over HTTPS, against a single node and against a
 * three-member cluster (at the leader), in the same run, rounds interleaved
 * so that a noisy neighbour hits every variant alike. The HTTPS cluster also
 * speaks mutual TLS between its members, as a production cluster would. The
 * target is at least 0.8× of plain HTTP: keep-alive makes handshakes rare.
 * A second TLS cluster serves HTTPS with plain TCP between its members: the
 * difference between the two is what mutual TLS on the peer transport costs.
 * Beside requests/s, the servers' CPU time per request (all members of a
 * cluster summed, from /proc): wrk's own TLS work shares the two cores, so
 * requests/s moves with what the client pays; the CPU column is what the
 * servers pay.
 *
 *   node dist/bench/security.js [--duration 10] [--connections 100] [--rounds 3] [--engine lsm]
 *
 * Writes the table to docs/benchmarks.md (section "security").
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpulseClient } from '../src/client/client.js';
import { ProcessCluster } from '../testkit/process/cluster-process.js';
import { type ServerProcess, startServerProcess } from '../testkit/process/server-process.js';
import { type PemSet, TestPki } from '../testkit/security/pki.js';
import { type CeilingProcess, startCeiling } from './lib/ceiling.js';
import { type WrkResult, runWrk } from './lib/wrk.js';
import { flag, formatNumber, loadLine, machineLine, processCpuSeconds, table, writeSection } from './report.js';

const durationSeconds = Number(flag('duration', '10'));
const connections = Number(flag('connections', '100'));
const rounds = Number(flag('rounds', '3'));
const engine = flag('engine', 'lsm');
/** Seconds of wrk per variant and operation before the measured rounds, discarded (JIT warm-up). */
const warmupSeconds = Number(flag('warmup', '3'));
const KEYS = 1000;
const TOKEN = 'bench-token-0123456789abcdef';

interface Target {
  readonly label: string;
  /** The plain-HTTP variant this one is compared with (its own label for a baseline). */
  readonly baseline: string;
  readonly url: string;
  readonly token?: string;
  readonly ca?: Buffer;
  /** The server processes whose CPU time a request costs (a cluster's every member). */
  readonly pids: readonly number[];
  /** The server holds the keys already (the ceilings); otherwise they are written through the client first. */
  readonly preloaded?: boolean;
}

interface Measured {
  readonly wrk: WrkResult;
  /** The servers' CPU time (user + system) per request served, µs. */
  readonly cpuMicrosPerRequest: number;
}

async function cpuSeconds(pids: readonly number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) total += await processCpuSeconds(pid);
  return total;
}

function memberPids(cluster: ProcessCluster): number[] {
  return [1, 2, 3].map((id) => cluster.pid(id)!);
}

async function wrkScript(method: 'PUT' | 'GET', token: string | undefined): Promise<string> {
  const path = join(tmpdir(), `impulse-security-bench-${method}${token !== undefined ? '-token' : ''}.lua`);
  const lines = [
    'counter = 0',
    ...(token !== undefined ? [`wrk.headers["Authorization"] = "Bearer ${token}"`] : []),
    'request = function()',
    '  counter = counter + 1',
    `  local key = "/kv/key" .. (counter % ${KEYS})`,
    method === 'PUT' ? '  return wrk.format("PUT", key, nil, string.format("value-%010d", counter))' : '  return wrk.format("GET", key)',
    'end',
  ];
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}

async function preload(target: Target): Promise<void> {
  const client = new ImpulseClient({ endpoint: target.url, ...(target.token !== undefined ? { token: target.token } : {}), ...(target.ca !== undefined ? { ca: target.ca } : {}) });
  try {
    await Promise.all(Array.from({ length: 20 }, async (_, worker) => {
      for (let i = worker; i < KEYS; i += 20) await client.put(`key${i}`, 'value-0000000000');
    }));
  } finally {
    client.close();
  }
}

function tlsArgs(pem: PemSet, peers: boolean): string[] {
  return ['--tls-cert', pem.certFile, '--tls-key', pem.keyFile, ...(peers ? ['--peer-tls-ca', pem.caFile] : [])];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const pki = await TestPki.create(3);
  const root = await mkdtemp(join(tmpdir(), 'impulse-security-bench-'));
  const tokenFile = join(root, 'tokens');
  await writeFile(tokenFile, `bench write ${TOKEN}\n`);
  const singles: ServerProcess[] = [];
  const clusters: ProcessCluster[] = [];
  const ceilings: CeilingProcess[] = [];
  try {
    const single = async (args: string[]): Promise<ServerProcess> => {
      const server = await startServerProcess(['--engine', engine, '--sync', 'none', '--data-dir', await mkdtemp(join(root, 'single-')), ...args]);
      singles.push(server);
      return server;
    };
    const loadAtStart = loadLine();
    console.log(`${machineLine()} · ${loadAtStart}`);
    const plain = await single([]);
    const plainToken = await single(['--token-file', tokenFile]);
    const https = await single(tlsArgs(pki.node(1), false));
    const httpsToken = await single([...tlsArgs(pki.node(1), false), '--token-file', tokenFile]);
    const plainCluster = await ProcessCluster.start(3, { serveArgs: ['--engine', engine] });
    clusters.push(plainCluster);
    const tlsCluster = await ProcessCluster.start(3, { serveArgs: ['--engine', engine], memberArgs: (id) => tlsArgs(pki.node(id), true), https: true, clientOptions: { ca: pki.node(1).ca } });
    clusters.push(tlsCluster);
    const httpsPlainPeers = await ProcessCluster.start(3, { serveArgs: ['--engine', engine], memberArgs: (id) => tlsArgs(pki.node(id), false), https: true, clientOptions: { ca: pki.node(1).ca } });
    clusters.push(httpsPlainPeers);
    // What TLS costs Node itself: the bare node:http server with a Map beside the same over node:https.
    const ceilingHttp = await startCeiling({ preload: KEYS });
    ceilings.push(ceilingHttp);
    const ceilingHttps = await startCeiling({ preload: KEYS, tls: pki.node(1) });
    ceilings.push(ceilingHttps);
    const ca = pki.node(1).ca;
    const ceilingLabel = 'bare node:http + Map (ceiling), HTTP';
    const singleLabel = `single node (${engine}, sync none), HTTP`;
    const clusterLabel = `3 members (${engine}), at the leader, HTTP`;
    const targets: Target[] = [
      { label: ceilingLabel, baseline: ceilingLabel, url: ceilingHttp.url, pids: [ceilingHttp.pid], preloaded: true },
      { label: 'bare node:https + Map (ceiling), HTTPS', baseline: ceilingLabel, url: ceilingHttps.url, ca, pids: [ceilingHttps.pid], preloaded: true },
      { label: singleLabel, baseline: singleLabel, url: plain.url, pids: [plain.pid] },
      // The token check without TLS: separates what tokens cost from what TLS costs.
      { label: `single node (${engine}, sync none), HTTP + token`, baseline: singleLabel, url: plainToken.url, token: TOKEN, pids: [plainToken.pid] },
      { label: `single node (${engine}, sync none), HTTPS`, baseline: singleLabel, url: https.url, ca, pids: [https.pid] },
      { label: `single node (${engine}, sync none), HTTPS + token`, baseline: singleLabel, url: httpsToken.url, ca, token: TOKEN, pids: [httpsToken.pid] },
      { label: clusterLabel, baseline: clusterLabel, url: plainCluster.url(await plainCluster.waitForLeader()), pids: memberPids(plainCluster) },
      // HTTPS for the client, plain TCP between members: separates the client's TLS from the peer transport's.
      { label: `3 members (${engine}), at the leader, HTTPS, plain TCP between members`, baseline: clusterLabel, url: httpsPlainPeers.url(await httpsPlainPeers.waitForLeader()), ca, pids: memberPids(httpsPlainPeers) },
      { label: `3 members (${engine}), at the leader, HTTPS + mutual TLS between members`, baseline: clusterLabel, url: tlsCluster.url(await tlsCluster.waitForLeader()), ca, pids: memberPids(tlsCluster) },
    ];
    for (const target of targets) if (target.preloaded !== true) await preload(target);
    const results = new Map<string, Measured[]>();
    for (const method of ['GET', 'PUT'] as const) {
      if (warmupSeconds > 0) for (const target of targets) runWrk(target.url, await wrkScript(method, target.token), connections, warmupSeconds);
      for (let round = 0; round < rounds; round++) {
        for (const target of targets) {
          const script = await wrkScript(method, target.token);
          const cpuBefore = await cpuSeconds(target.pids);
          const wrk = runWrk(target.url, script, connections, durationSeconds);
          const cpuMicrosPerRequest = ((await cpuSeconds(target.pids)) - cpuBefore) * 1e6 / Math.max(1, wrk.requests);
          const key = `${target.label}|${method}`;
          results.set(key, [...(results.get(key) ?? []), { wrk, cpuMicrosPerRequest }]);
          console.log(`${target.label.padEnd(80)} ${method} ${formatNumber(wrk.requestsPerSecond).padStart(7)} req/s  p99 ${wrk.latencyP99Ms.toFixed(1)} ms  errors ${wrk.errors}  server CPU ${cpuMicrosPerRequest.toFixed(1)} µs/request`);
        }
      }
    }
    const rows: Array<Array<string | number>> = [];
    for (const method of ['GET', 'PUT'] as const) {
      for (const target of targets) {
        const measured = results.get(`${target.label}|${method}`)!;
        const baseMeasured = results.get(`${target.baseline}|${method}`)!;
        const runs = measured.map((m) => m.wrk);
        const rates = runs.map((run) => run.requestsPerSecond);
        // Per round: this variant ÷ its plain-HTTP baseline measured moments before.
        const ratios = runs.map((run, i) => run.requestsPerSecond / baseMeasured[i]!.wrk.requestsPerSecond);
        const cpu = median(measured.map((m) => m.cpuMicrosPerRequest));
        const baseCpu = median(baseMeasured.map((m) => m.cpuMicrosPerRequest));
        rows.push([
          target.label, method,
          formatNumber(median(rates)), `${formatNumber(Math.min(...rates))}–${formatNumber(Math.max(...rates))}`,
          formatNumber(median(runs.map((run) => run.latencyP99Ms)), 1),
          runs.reduce((sum, run) => sum + run.errors, 0),
          `${median(ratios).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`,
          `${formatNumber(cpu, 1)} (${(cpu / baseCpu).toFixed(2)}×)`,
        ]);
      }
    }
    const markdown = [
      '## TLS and tokens: HTTPS vs HTTP (wrk, 100 connections)',
      '',
      `${machineLine()} · ${loadAtStart} at the start, ${loadLine()} at the end`,
      '',
      `\`node dist/bench/security.js --rounds ${rounds} --duration ${durationSeconds} --warmup ${warmupSeconds} --engine ${engine}\`: \`wrk -t1 -c${connections} -d${durationSeconds}s\` per cell on 1000 keys, every variant in one run, rounds interleaved, after ${warmupSeconds} s of the same load per variant that is not counted; the bare node:http and node:https servers with a Map (bench/ceiling-server.ts) show what TLS costs Node itself; the machine's two cores are shared by wrk, the servers and other engineers' work. "vs HTTP" is requests/s ÷ the plain-HTTP variant of the same deployment in the same round, median (min–max). Of the two HTTPS clusters one runs mutual TLS between its members, the other plain TCP. Server CPU is the servers' user + system time per request served (a cluster's three members summed, from /proc), median over the rounds, and its ratio to the plain-HTTP twin's: wrk's own TLS work shares the cores, so this is the steadier figure for what TLS costs the servers. Certificates are EC P-256 (\`impulse certs\`); wrk keeps its connections, so each does one handshake.`,
      '',
      table(['variant', 'op', 'requests/s', 'range', 'p99 ms', 'errors', 'vs HTTP', 'server CPU µs/request (vs HTTP)'], rows),
    ].join('\n');
    console.log('\n' + markdown);
    await writeSection('security', markdown);
  } finally {
    for (const server of singles) {
      server.kill('SIGKILL');
      await server.exited;
    }
    for (const cluster of clusters) await cluster.close();
    for (const ceiling of ceilings) await ceiling.stop();
    await rm(root, { recursive: true, force: true });
    await pki.close();
  }
}

await main();

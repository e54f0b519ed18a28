/**
 * The lsm background worker thread (started by `WorkerJobRunner`,
 * job-runner.ts): runs flush and compaction jobs (job.ts) on its own NodeVfs
 * and reports the tables it wrote. It changes nothing but new table files;
 * new file numbers come from the engine, one request per table.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { assert } from '../../util/assert.js';
import { NodeVfs } from '../../vfs/node-vfs.js';
import type { JobEnvironment } from './compaction.js';
import { jobAsBuffers, runJob } from './job.js';
import { type MainMessage, type WorkerMessage, type WorkerSetup, serializeError } from './job-runner.js';

const port = parentPort;
assert(port !== null, 'background-worker.js runs only as a worker thread');
const setup = workerData as WorkerSetup;

let nextRequest = 1;
const requested = new Map<number, (fileNumber: number) => void>();
/** Numbers the current job came with; when they run out, more are asked for one at a time. */
let reserved: number[] = [];

const env: JobEnvironment = {
  vfs: new NodeVfs(),
  dir: setup.dir,
  tuning: setup.tuning,
  allocateFileNumber: () =>
    reserved.shift() ??
    new Promise<number>((resolve) => {
      const request = nextRequest++;
      requested.set(request, resolve);
      send({ type: 'file-number-request', request });
    }),
};

function send(message: WorkerMessage): void {
  port!.postMessage(message);
}

port.on('message', (message: MainMessage) => {
  if (message.type === 'file-number') {
    const resolve = requested.get(message.request);
    requested.delete(message.request);
    resolve?.(message.fileNumber);
    return;
  }
  reserved = [...message.fileNumbers];
  runJob(env, jobAsBuffers(message.job)).then(
    (tables) => send({ type: 'done', id: message.id, tables }),
    (error: unknown) => send({ type: 'failed', id: message.id, error: serializeError(error) }),
  );
});

/**
 * `impulse serve`: one node. Opens the store (the engine in its home
 * `<dataDir>/<engine>`, the key-value state machine, the local service),
 * serves HTTP, and on SIGINT or SIGTERM shuts down cleanly (stop accepting,
 * finish in-flight requests and queued writes, close the store); a second
 * signal exits at once.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { ImpulseServer } from '../api/server.js';
import type { KvService } from '../service/kv-service.js';
import { openLocalKvService } from '../service/open-local.js';
import { VERSION } from '../version.js';
import type { ServeConfig } from './config.js';
import { lockDataDir } from './data-dir-lock.js';

export async function serve(config: ServeConfig): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } });
  const dataDir = join(config.dataDir, config.engine);
  await mkdir(config.dataDir, { recursive: true });
  const lock = await lockDataDir(join(config.dataDir, `${config.engine}.lock`));
  let service: KvService | undefined;
  let server: ImpulseServer;
  let address;
  try {
    service = await openLocalKvService({ engine: config.engine, dataDir, sync: config.sync, limits: config.limits });
    server = new ImpulseServer({ service, logger, version: VERSION, statusExtra: { dataDir } });
    address = await server.listen(config.port, config.host);
  } catch (error) {
    await service?.close();
    await lock.release();
    throw error;
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    server.close().then(
      async () => {
        await lock.release();
        logger.info('store closed; bye');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // Announce only once the handlers are in place: whoever waits for this line may signal at once.
  const status = await service.status();
  logger.info(
    { url: `http://${address.address}:${address.port}`, engine: status.engine, dataDir, sync: status.sync, appliedIndex: status.appliedIndex, version: VERSION },
    'impulse is listening',
  );
}

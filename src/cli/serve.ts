/**
 * `impulse serve`: one node. Opens the engine, serves HTTP, and on SIGINT or
 * SIGTERM shuts down cleanly (stop accepting, finish in-flight requests, close
 * the engine); a second signal exits at once. The data-directory lock is
 * released on every way out, a failed shutdown included. SIGHUP is logged and
 * otherwise ignored: logs go to stdout, so there is no log file to reopen.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { ImpulseServer } from '../api/server.js';
import { createEngine } from '../storage/registry.js';
import { VERSION } from '../version.js';
import type { ServeConfig } from './config.js';
import { lockDataDir } from './data-dir-lock.js';

export async function serve(config: ServeConfig): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } });
  const dataDir = join(config.dataDir, config.engine);
  const engine = createEngine(config.engine, { dataDir, sync: config.sync, limits: config.limits });
  await mkdir(config.dataDir, { recursive: true });
  const lock = await lockDataDir(join(config.dataDir, `${config.engine}.lock`));
  // The last resort: whatever ends the process (a second signal, an uncaught error), the lock goes too.
  process.on('exit', () => lock.releaseSync());
  let server: ImpulseServer;
  let address;
  try {
    await engine.open();
    server = new ImpulseServer({ engine, logger, version: VERSION, statusExtra: { dataDir } });
    address = await server.listen(config.port, config.host);
  } catch (error) {
    await engine.close().catch((closeError: unknown) => logger.warn({ err: closeError }, 'closing the engine after a failed start'));
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
        logger.info('engine closed; bye');
        process.exit(0);
      },
      async (error: unknown) => {
        logger.error({ err: error }, 'error during shutdown');
        await lock.release();
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => logger.info({ signal: 'SIGHUP' }, 'SIGHUP ignored: logs go to stdout, there is no log file to reopen'));
  // Announce only once the handlers are in place: whoever waits for this line may signal at once.
  logger.info(
    { url: `http://${address.address}:${address.port}`, engine: engine.name, dataDir, sync: engine.supports.durable ? config.sync : 'none', version: VERSION },
    'impulse is listening',
  );
}

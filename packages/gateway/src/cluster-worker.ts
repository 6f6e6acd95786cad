// Entry point of a gateway worker process (forked by run-gateway.ts).
import { createLogger } from './logger.js';
import { runWorker } from './run-gateway.js';

runWorker((config) => createLogger(config.logLevel));

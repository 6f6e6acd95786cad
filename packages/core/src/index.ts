export * from './errors.js';
export * from './identity.js';
export * from './logger.js';
export * from './session-event.js';
export * from './policy.js';
export * from './scram-client.js';
export * from './worker-script.js';

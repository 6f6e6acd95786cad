export * from './decoders.js';
export * from './frame-scanner.js';
export * from './message-builders.js';
export * from './message-codes.js';
export * from './startup-packet.js';
export * from './upstream-auth.js';
export * from './frame-forwarder.js';
export { decodeBindResultFormats } from './bind-result-formats.js';

// The event pipeline's public surface; each part exports from its own folder.
export {};
export * from './store/index.js';

export * from './base-model.js';
export * from './layers.js';
export * from './module.js';

export * from './layers.js';
export * from './module.js';

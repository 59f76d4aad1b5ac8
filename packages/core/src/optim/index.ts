export * from './adamw.js';
export * from './clip.js';
export * from './optimizer.js';
export * from './schedules.js';
export * from './sgd.js';

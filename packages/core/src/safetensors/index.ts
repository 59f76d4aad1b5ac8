// Platform-neutral safetensors API; the Node file reader/writer (./node-file.ts) is exported by the
// package's node entry only, so browser bundles never pull in node:fs.
export * from './errors.js';
export * from './format.js';

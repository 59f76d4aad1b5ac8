#!/usr/bin/env node
// Asks Dawn (npm `webgpu`, as installed for @sharelora/core) for a WebGPU adapter and device.
// Prints the adapter's info as one JSON document on stdout.
// Exit codes: 0 adapter and device OK, 3 no adapter (or device creation failed),
// 4 the `webgpu` package is not installed (run `pnpm install` first).
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// biome-ignore lint/suspicious/noUndeclaredEnvVars: a standalone script, not a turbo task
if (!process.env.XDG_RUNTIME_DIR) {
  // Mesa's Vulkan drivers warn when this is unset; a private per-user dir silences it.
  const dir = join(tmpdir(), `xdg-runtime-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}

let webgpu;
try {
  const require = createRequire(join(root, 'packages/core/package.json'));
  const entry = require.resolve('webgpu');
  webgpu = await import(pathToFileURL(entry).href);
} catch (err) {
  console.error(`probe-webgpu: cannot load the \`webgpu\` package from packages/core (${err.message}).`);
  console.error('probe-webgpu: run `pnpm install` at the repository root first.');
  process.exit(4);
}

const gpu = webgpu.create([]);
let adapter = null;
try {
  adapter = await gpu.requestAdapter();
} catch (err) {
  console.error(`probe-webgpu: requestAdapter threw: ${err.message}`);
}
if (!adapter) {
  console.log(JSON.stringify({ adapter: null }));
  console.error('probe-webgpu: no WebGPU adapter found.');
  process.exit(3);
}

const info = adapter.info ?? {};
const result = {
  adapter: {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
  },
  isFallbackAdapter: Boolean(adapter.isFallbackAdapter ?? info.isFallbackAdapter),
  features: [...adapter.features].sort(),
  limits: {
    maxBufferSize: adapter.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
  },
  device: false,
};

let device = null;
try {
  device = await adapter.requestDevice();
  result.device = true;
} catch (err) {
  result.deviceError = String(err?.message ?? err);
}
console.log(JSON.stringify(result, null, 2));
if (device) {
  const { vendor, architecture, description } = result.adapter;
  console.error(
    `probe-webgpu: adapter "${description || info.device}" (${vendor}, ${architecture}); device OK.`,
  );
  device.destroy();
  // Let Dawn finish tearing the device down before node exits (exiting mid-teardown has crashed here).
  await device.lost;
} else {
  console.error('probe-webgpu: an adapter was found but requestDevice failed.');
  process.exitCode = 3;
}
// Drop every reference to Dawn objects so the event loop can drain and node exits.
device = null;
adapter = null;

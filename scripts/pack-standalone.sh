#!/bin/bash
# Packs the CLI into one folder that runs with a bare `node` (no pnpm, no install): a single-file
# bundle beside the Linux x64 bindings of the `webgpu` package and of `koffi` (which keeps Dawn's
# start-up notices off stderr; without it they are printed, nothing else changes). For machines
# that only get a copy of a folder, such as a lent GPU machine. Needs `pnpm install` here first.
# Usage: bash scripts/pack-standalone.sh OUT_DIR; then: node OUT_DIR/dist/sharelora.mjs doctor
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: pack-standalone.sh OUT_DIR}
webgpu=$(node -e "console.log(require('node:path').dirname(require.resolve('webgpu/package.json', {paths: ['packages/core']})))")
esbuild=$(node -e "console.log(require.resolve('esbuild/bin/esbuild', {paths: [require.resolve('tsup', {paths: ['apps/cli']})]}))")
mkdir -p "$out/node_modules/webgpu/dist/linux-x64"
cp "$webgpu/index.js" "$webgpu/package.json" "$out/node_modules/webgpu/"
cp "$webgpu/dist/linux-x64/dawn.node" "$out/node_modules/webgpu/dist/linux-x64/"
koffi=$(node -e "console.log(require('node:path').dirname(require.resolve('koffi/package.json', {paths: ['packages/core']})))")
mkdir -p "$out/node_modules/koffi/build/koffi/linux_x64"
cp "$koffi/index.js" "$koffi/package.json" "$out/node_modules/koffi/"
cp "$koffi/build/koffi/linux_x64/koffi.node" "$out/node_modules/koffi/build/koffi/linux_x64/"
# --version reads the package.json above the bundle, as it does beside dist/ in the package.
cp apps/cli/package.json "$out/"
# The bundle is ESM; the few CommonJS dependencies inside it call require.
"$esbuild" apps/cli/src/bin.ts --bundle --platform=node --format=esm --target=node20 --external:webgpu \
  --log-level=warning --outfile="$out/dist/sharelora.mjs" \
  --banner:js="import { createRequire as __sharelora_require } from 'node:module'; const require = __sharelora_require(import.meta.url);"
echo "packed: node $out/dist/sharelora.mjs --help"

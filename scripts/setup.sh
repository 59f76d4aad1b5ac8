#!/usr/bin/env bash
# Everything a fresh Linux machine needs beyond `pnpm install`: a WebGPU adapter for Dawn
# (setup-webgpu.sh) and Debian's Chromium for the browser-entry test (setup-browser.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup-webgpu.sh"
bash "$here/setup-browser.sh"

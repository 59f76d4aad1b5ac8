#!/usr/bin/env bash
# Installs Debian's Chromium for the browser-entry test (packages/core/test/browser.test.ts), which
# runs @sharelora/core on navigator.gpu in headless Chromium with its SwiftShader WebGPU adapter.
# Idempotent: does nothing when /usr/bin/chromium (or $CHROMIUM_PATH) exists. Debian/Ubuntu only.
set -euo pipefail

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  echo "setup-browser: $("$chromium" --version 2>/dev/null || echo "$chromium") present. Nothing to do." >&2
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || {
  echo "setup-browser: ERROR: no $chromium and no apt-get: install Chromium and set CHROMIUM_PATH." >&2
  exit 1
}
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-browser: ERROR: run as root (or install sudo)." >&2; exit 1; }
  SUDO=(sudo)
fi
echo "setup-browser: installing Debian's chromium..." >&2
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
  { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
[ -x "$chromium" ] || { echo "setup-browser: ERROR: chromium install did not provide $chromium." >&2; exit 1; }
echo "setup-browser: $("$chromium" --version 2>/dev/null) installed." >&2

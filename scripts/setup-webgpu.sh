#!/usr/bin/env bash
# Makes sure Dawn (npm `webgpu`) finds a WebGPU adapter on this machine. Idempotent.
#
# 1. Probe (scripts/probe-webgpu.mjs). An adapter that can create a device: nothing to do.
# 2. Otherwise, on Debian, install Mesa's Vulkan drivers (lavapipe, a CPU Vulkan implementation):
#    on bookworm from bookworm-backports, because bookworm's own Mesa 22.3 lavapipe is rejected by
#    Dawn ("shaderUniform*ArrayDynamicIndexing required") while Mesa >= 24 works.
# 3. Probe again; fail loudly if there is still no adapter.
# Elsewhere it prints what to install and exits non-zero.
#
# Needs `pnpm install` to have run (the probe loads `webgpu` from packages/core).
# Usage: bash scripts/setup-webgpu.sh [--check]    (--check: probe only, never install)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
probe="$here/probe-webgpu.mjs"
check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  '') ;;
  -h | --help)
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "setup-webgpu: unknown argument '$1' (usage: setup-webgpu.sh [--check])" >&2
    exit 2
    ;;
esac

log() { printf 'setup-webgpu: %s\n' "$*" >&2; }
die() {
  printf '\nsetup-webgpu: ERROR: %s\n\n' "$*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || die "node is not on PATH (Node >= 20.19 is required)."
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/xdg-runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

probe_out=""
# Runs the probe; sets probe_rc and probe_out (stdout + stderr).
run_probe() {
  probe_rc=0
  probe_out="$(node "$probe" 2>&1)" || probe_rc=$?
  # A device was created: that is what matters, even if node then crashed while exiting.
  if [ "$probe_rc" -ne 0 ] && [ "$probe_rc" -ne 4 ] && printf '%s\n' "$probe_out" | grep -q 'device OK\.$'; then
    log "the probe created a device but exited with $probe_rc; treating the adapter as usable."
    probe_rc=0
  fi
  if [ "$probe_rc" -eq 4 ]; then
    printf '%s\n' "$probe_out" >&2
    die "the webgpu package is not installed: run 'pnpm install' at the repository root first."
  fi
}

adapter_line() { printf '%s\n' "$probe_out" | grep '^probe-webgpu: adapter' || true; }

run_probe
if [ "$probe_rc" -eq 0 ]; then
  log "$(adapter_line | sed 's/^probe-webgpu: //') Nothing to do."
  exit 0
fi
log "Dawn found no usable WebGPU adapter (probe exit $probe_rc)."
if [ "$check_only" -eq 1 ]; then
  printf '%s\n' "$probe_out" >&2
  exit 3
fi

os_id=""
os_like=""
codename=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  os_id="${ID:-}"
  os_like="${ID_LIKE:-}"
  codename="${VERSION_CODENAME:-}"
fi

manual_help() {
  cat >&2 <<'EOF'

setup-webgpu: this script installs a software WebGPU adapter automatically only on Debian.
Install one yourself, then re-run `bash scripts/setup-webgpu.sh`:
  - Any Linux: a Vulkan loader (libvulkan1 / vulkan-loader) and a Vulkan driver: your GPU's
    (NVIDIA's proprietary driver, or Mesa's radv/anv) or, without a GPU, Mesa's lavapipe
    (mesa-vulkan-drivers / vulkan-swrast) at Mesa >= 24: older lavapipe is rejected by Dawn.
      Ubuntu 24.04+:  sudo apt-get install libvulkan1 mesa-vulkan-drivers
      Fedora:         sudo dnf install vulkan-loader mesa-vulkan-drivers
      Arch:           sudo pacman -S vulkan-icd-loader vulkan-swrast
  - macOS (Metal) and Windows (D3D12) need no extra packages: check the GPU driver is current.
EOF
}

if [ "$(uname -s)" != Linux ] || [ "$os_id" != debian ]; then
  printf '%s\n' "$probe_out" >&2
  manual_help
  die "no WebGPU adapter, and this is not Debian (ID=${os_id:-unknown}${os_like:+, ID_LIKE=$os_like})."
fi
command -v apt-get >/dev/null 2>&1 || die "Debian without apt-get? Install libvulkan1 and mesa-vulkan-drivers (Mesa >= 24)."

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and sudo is not installed: run this script as root."
  SUDO=(sudo)
fi
apt_get() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }

# The archive URI of the system's own Debian source (deb822 *.sources or one-line *.list).
debian_archive_uri() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    uri="$(awk -v suite="$codename" '
      function flush() { if (hit && uris != "") { print uris; found = 1; exit } hit = 0; uris = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "uris:" { uris = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
      END { if (!found) flush() }
    ' "$f")"
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -r "$f" ] || continue
      uri="$(awk -v suite="$codename" '
        $1 == "deb" {
          i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
          if ($(i + 1) == suite) { print $i; exit }
        }
      ' "$f")"
      [ -n "$uri" ] && break
    done
  fi
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# Is the suite already in an enabled (non-comment) line of a source file apt reads?
has_suite() {
  local suite="$1" f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    if grep -vE '^[[:space:]]*#' "$f" | grep -qE "(^|[[:space:]])${suite}([[:space:]]|$)"; then
      return 0
    fi
  done
  return 1
}

install_args=(install -y --no-install-recommends)
case "$codename" in
  bookworm)
    if has_suite bookworm-backports; then
      log "bookworm-backports is already an apt source."
    else
      uri="$(debian_archive_uri)"
      src=/etc/apt/sources.list.d/bookworm-backports.sources
      log "adding $src (URIs: $uri)"
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" | "${SUDO[@]}" tee "$src" >/dev/null
    fi
    install_args+=(-t bookworm-backports)
    ;;
  bullseye | buster | stretch | jessie)
    die "Debian $codename is too old: its Mesa lavapipe cannot run Dawn. Use Debian 12 (bookworm) or newer."
    ;;
  *)
    # trixie and later ship Mesa >= 24 in their own suite.
    ;;
esac

log "apt-get update"
apt_get update -q || die "apt-get update failed (see above)."
log "apt-get ${install_args[*]} libvulkan1 mesa-vulkan-drivers"
apt_get "${install_args[@]}" libvulkan1 mesa-vulkan-drivers || die "installing libvulkan1 mesa-vulkan-drivers failed (see above)."
log "installed: $(dpkg-query -W -f='${Package} ${Version}  ' libvulkan1 mesa-vulkan-drivers 2>/dev/null)"

run_probe
if [ "$probe_rc" -ne 0 ]; then
  printf '%s\n' "$probe_out" >&2
  die "still no WebGPU adapter after installing Mesa's Vulkan drivers.
  Check: Vulkan ICDs in /usr/share/vulkan/icd.d (lvp_icd.*.json for lavapipe), the Mesa version
  (dpkg -l mesa-vulkan-drivers: Dawn needs >= 24), and the probe output above."
fi
log "$(adapter_line | sed 's/^probe-webgpu: //') WebGPU is ready."

#!/usr/bin/env bash
# Install the Debian packages `make bench` needs beyond the tests' (scripts/ensure-system-
# packages.sh): wrk and nginx for the router-overhead and pool scenarios, PortAudio's headers
# for WhisperLive's PyAudio dependency (built from source by pip), when missing.
# Called by `make bench` and `make bench-smoke`; safe to run again.
set -euo pipefail

need=()
# The benchmarks speak the tests' synthesized sentences (tests/support/speech.py).
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -e /usr/include/portaudio.h ] || need+=(portaudio19-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "missing packages: ${need[*]} (run as root, or: apt-get install ${need[*]})" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# nginx's package would start a machine-wide nginx where an init system runs: say no, as
# scripts/ensure-system-packages.sh does (a policy-rc.d already there is left alone).
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
install() { $SUDO apt-get install -y -q "${need[@]}" >/dev/null; }
install 2>/dev/null || {
  $SUDO apt-get update -q >/dev/null
  install
}

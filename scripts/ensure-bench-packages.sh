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
exec "$(dirname "$0")/apt-install.sh" "${need[@]}"

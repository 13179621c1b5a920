#!/usr/bin/env bash
# apt-install.sh PACKAGE...: install Debian packages as root (or with sudo), starting nothing.
# Used by scripts/ensure-system-packages.sh (make test) and ensure-bench-packages.sh (make
# bench), which decide what is missing.
set -euo pipefail
[ $# -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "missing packages: $* (run as root, or: apt-get install $*)" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "installing $*" >&2
export DEBIAN_FRONTEND=noninteractive
# Installing must not start anything: Debian's docker.io, containerd and nginx would otherwise
# start machine-wide daemons (with their own bridge and iptables rules) where an init system
# runs. A policy-rc.d that says "no" is the documented way; one already there is left alone.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
install() { $SUDO apt-get install -y -q "$@" >/dev/null; }
install "$@" 2>/dev/null || {
  $SUDO apt-get update -q >/dev/null
  install "$@"
}

#!/usr/bin/env bash
# Install the Debian packages the tests need (speech synthesis, the browser that
# tests/integration/test_browser_page.py drives, iproute2 for network namespaces, and the
# container runtime, CNI plugins, dockerd and debootstrap of the local cluster), when missing.
# Called by `make test`; safe to run again (does nothing when all are present).
set -euo pipefail

need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
# Debian's own build: the playwright package drives it; `playwright install` downloads
# browsers, which cannot work offline, so it is never used.
[ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || need+=(chromium)
# `ip netns`: tests/k8s publish real workers as endpoints from their own network namespaces.
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
# A real Redis for the answer cache a fleet of routers shares (tests start their own).
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
# The local cluster (localcluster/, tests/cluster): Debian's container runtime, CNI plugins and
# iptables for the node; dockerd and debootstrap to build the images; Compose for deploy/.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have containerd || need+=(containerd)
have runc || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have iptables || need+=(iptables)
have conntrack || need+=(conntrack)
have nsenter || need+=(util-linux)
have dockerd || need+=(docker.io)
have docker-compose || need+=(docker-compose)
have debootstrap || need+=(debootstrap)
have openssl || need+=(openssl)
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
# Installing must not start anything: Debian's docker.io and containerd would otherwise start
# machine-wide daemons (with their own bridge and iptables rules) where an init system runs.
# A policy-rc.d that says "no" is the documented way; one already there is left alone.
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

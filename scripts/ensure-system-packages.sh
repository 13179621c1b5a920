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
exec "$(dirname "$0")/apt-install.sh" "${need[@]}"

#!/usr/bin/env bash
# Build the Kubernetes tools that tests/k8s runs (a real control plane, like envtest), once per
# machine, from the Go module proxy only: no Docker, no release downloads.
#
#   scripts/build-k8s-tools.sh          # builds what is missing; the last line on stdout is the bin dir
#   scripts/build-k8s-tools.sh --check  # builds nothing: exit 0 (and print the bin dir) if all built
#   scripts/build-k8s-tools.sh --coredns                # CoreDNS alone (the local cluster's DNS);
#                                                       # the last line is the binary's path
#   scripts/build-k8s-tools.sh --print-coredns-version
#
# Installs into ${ASRPOOL_CACHE:-$HOME/.cache/asrpool}/k8s/<kubernetes version>/bin:
#   kube-apiserver kube-controller-manager kube-scheduler kubectl   k8s.io/kubernetes
#   kubelet kube-proxy (the node of `make cluster-up`)                k8s.io/kubernetes
#   etcd                                                             go.etcd.io/etcd/server/v3
#   helm                                                             helm.sh/helm/v3
#   kwok (optional: a failure is recorded and not retried)           sigs.k8s.io/kwok
# and, with --coredns, into .../coredns/<version>/bin:
#   coredns (the plugins images/coredns/main.go names)              github.com/coredns/coredns
# Versions: ASRPOOL_K8S_VERSION, ASRPOOL_ETCD_VERSION, ASRPOOL_HELM_VERSION, ASRPOOL_KWOK_VERSION
# (ASRPOOL_KWOK_VERSION=none skips kwok). When every binary is there this is a fast no-op that
# needs neither Go nor the network. A cold build took 14 minutes on two busy cores (Kubernetes
# 10 of them) and fills ~5 GB of GOCACHE and ~1.3 GB of GOMODCACHE; both keep their defaults, so
# a rebuild (another version, a new RECIPE) reuses most of the work (relinking: ~20 s).
set -euo pipefail

# Pinned: the newest releases on the proxy whose go.mod `go` line (1.26.0) Go 1.26 accepts, so
# GOTOOLCHAIN=local never needs another toolchain.
K8S_VERSION=${ASRPOOL_K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ASRPOOL_ETCD_VERSION:-v3.7.3}  # the 3.7 line that k8s 1.37's etcd client is on
HELM_VERSION=${ASRPOOL_HELM_VERSION:-v3.22.0}
KWOK_VERSION=${ASRPOOL_KWOK_VERSION:-v0.8.0}
COREDNS_VERSION=${ASRPOOL_COREDNS_VERSION:-v1.15.0}  # on client-go 0.37, like the cluster

# Bump when the way a tool is built changes (flags, ldflags), so caches rebuild it.
RECIPE=2

log() { echo "build-k8s-tools: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

CHECK_ONLY=0
MODE=k8s
case "${1:-}" in
  --check) CHECK_ONLY=1 ;;
  --coredns) MODE=coredns ;;
  --print-coredns-version)
    echo "$COREDNS_VERSION"
    exit 0
    ;;
  "") ;;
  *) die "usage: $0 [--check|--coredns|--print-coredns-version]" ;;
esac

if [[ $MODE == coredns ]]; then
  ROOT="${ASRPOOL_CACHE:-$HOME/.cache/asrpool}/coredns/$COREDNS_VERSION"
else
  ROOT="${ASRPOOL_CACHE:-$HOME/.cache/asrpool}/k8s/$K8S_VERSION"
fi
BIN="$ROOT/bin"
STAMPS="$ROOT/stamps"  # stamps/<tool>: "<version> recipe <RECIPE>" its binary was built from
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

[[ $K8S_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "ASRPOOL_K8S_VERSION must look like v1.37.2, not '$K8S_VERSION'"
K8S_MINOR=${BASH_REMATCH[1]}
# The staging modules (k8s.io/api, k8s.io/client-go, ...) are published as v0.<minor>.<patch>.
STAGING_VERSION="v0.$K8S_MINOR.${BASH_REMATCH[2]}"

K8S_TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

# built TOOL VERSION: the binary is installed and was built from VERSION by this RECIPE.
built() { [[ -x "$BIN/$1" && "$(cat "$STAMPS/$1" 2>/dev/null)" == "$2 recipe $RECIPE" ]]; }

# kwok is optional: a version that failed to build once is not tried again on every run.
kwok_settled() {
  [[ $KWOK_VERSION == none ]] || built kwok "$KWOK_VERSION" ||
    [[ "$(cat "$STAMPS/kwok.failed" 2>/dev/null)" == "$KWOK_VERSION recipe $RECIPE" ]]
}

k8s_built() {
  local t
  for t in "${K8S_TOOLS[@]}"; do built "$t" "$K8S_VERSION" || return 1; done
}

all_built() { k8s_built && built etcd "$ETCD_VERSION" && built helm "$HELM_VERSION" && kwok_settled; }
# What this run prints last: the bin dir, or with --coredns the binary.
RESULT=$BIN
if [[ $MODE == coredns ]]; then
  all_built() { built coredns "$COREDNS_VERSION"; }
  RESULT=$BIN/coredns
fi

if all_built; then
  echo "$RESULT"
  exit 0
fi
[[ $CHECK_ONLY == 1 ]] && exit 1

mkdir -p "$BIN" "$STAMPS"

# One build per cache dir at a time: a second run waits, then finds the binaries built.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$ROOT/.lock"
  if ! flock -n 9; then
    log "another build holds $ROOT/.lock; waiting for it"
    flock 9
  fi
else
  log "warning: no flock(1); concurrent builds are not serialised"
fi
if all_built; then
  echo "$RESULT"
  exit 0
fi

# Go's own installer puts it in /usr/local/go; a non-login shell may not have it on PATH.
command -v go >/dev/null 2>&1 || { [ -x /usr/local/go/bin/go ] && PATH="$PATH:/usr/local/go/bin"; }
command -v go >/dev/null 2>&1 || die "Go is needed to build the Kubernetes tools (https://go.dev/dl)"
export GOTOOLCHAIN=local      # never download another toolchain: fail clearly instead
export CGO_ENABLED=0          # static binaries, no C toolchain needed
export GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOWORK=off
export GOPROXY=${GOPROXY:-https://proxy.golang.org,direct}
GO_VERSION=$(go env GOVERSION)  # e.g. go1.26.8
GO_VERSION=${GO_VERSION#go}

WORK=$(mktemp -d "$ROOT/build.XXXXXX")  # same filesystem as $BIN, so the final mv is atomic
trap 'rm -rf "$WORK"' EXIT

# new_module NAME: an empty wrapper module (outside the repo) to build other modules' commands in.
new_module() {
  local dir="$WORK/$1"
  mkdir -p "$dir"
  (cd "$dir" && go mod init "asrpool.invalid/k8s-tools/$1" 2>/dev/null) ||
    { log "error: go mod init failed in $dir"; return 1; }
  echo "$dir"
}

# gomod DIR MODULE@VERSION: the path of that module's go.mod in the module cache (fetched from
# the proxy and checked against the checksum database; the module's source is not downloaded).
gomod() {
  (cd "$1" && go list -m -f '{{.GoMod}}' "$2") || die "cannot fetch $2 from $GOPROXY"
}

# check_go GOMOD WHAT: stop early, and say why, when the installed Go is older than GOMOD needs.
check_go() {
  local need
  need=$(awk '$1 == "go" {print $2; exit}' "$1")
  [[ -z $need ]] && return 0
  if [[ "$(printf '%s\n%s\n' "$need" "$GO_VERSION" | sort -V | head -n1)" != "$need" ]]; then
    log "error: $2 needs Go >= $need, this is Go $GO_VERSION (pick an older version or a newer Go)"
    return 1
  fi
}

# install_tool DIR TOOL VERSION: move a built binary into $BIN (a rename: atomic), then stamp it.
install_tool() {
  mv -f "$1/$2" "$BIN/$2" &&
    echo "$3 recipe $RECIPE" >"$1/$2.stamp" &&
    mv -f "$1/$2.stamp" "$STAMPS/$2" &&
    log "installed $2 $3 ($(du -h "$BIN/$2" | cut -f1))"
}

build_kubernetes() {
  local dir gomod_file staging=() m out ldflags pkg
  dir=$(new_module kubernetes)
  gomod_file=$(gomod "$dir" "k8s.io/kubernetes@$K8S_VERSION")
  check_go "$gomod_file" "k8s.io/kubernetes $K8S_VERSION"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with directories
  # of its own repo; replaces in a dependency are ignored, so point each at its published tag.
  mapfile -t staging < <(awk '
    $1 == "require" && $2 == "(" { inreq = 1; next }
    inreq && $1 == ")" { inreq = 0; next }
    ($1 == "require" || inreq) {
      mod = ($1 == "require") ? $2 : $1; ver = ($1 == "require") ? $3 : $2
      if (mod ~ /^k8s\.io\// && ver == "v0.0.0") print mod
    }' "$gomod_file" | sort -u)
  [[ ${#staging[@]} -gt 0 ]] || die "found no v0.0.0 staging modules in $gomod_file"
  log "kubernetes $K8S_VERSION: ${#staging[@]} staging modules at $STAGING_VERSION"
  local edits=(-require="k8s.io/kubernetes@$K8S_VERSION")
  for m in "${staging[@]}"; do edits+=(-replace="$m=$m@$STAGING_VERSION"); done
  (cd "$dir" && go mod edit "${edits[@]}")

  # What hack/lib/version.sh stamps, so /version and `kubectl version` report the release; the
  # build date is the release time the proxy records, so two builds are alike.
  local released
  released=$(cd "$dir" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' \
    "k8s.io/kubernetes@$K8S_VERSION")
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
    # The proxy does not say which commit a tag is; empty beats the "$Format:%H$" placeholder.
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$released -X $pkg.gitCommit="
  done
  out="$WORK/kubernetes-bin"
  mkdir -p "$out"
  log "building ${K8S_TOOLS[*]} (the longest part: many minutes on two cores)"
  (cd "$dir" && go build -ldflags="$ldflags" -o "$out/" \
    "${K8S_TOOLS[@]/#/k8s.io/kubernetes/cmd/}") || die "building Kubernetes $K8S_VERSION failed"
  for m in "${K8S_TOOLS[@]}"; do install_tool "$out" "$m" "$K8S_VERSION"; done
}

# build_one NAME MODULE VERSION PACKAGE LDFLAGS: one command from one module, into $BIN/NAME.
# Returns non-zero on failure (callers use it in `if`, where `set -e` does not apply).
build_one() {
  local name=$1 module=$2 version=$3 pkg=$4 ldflags=$5 dir gomod_file out
  dir=$(new_module "$name") || return 1
  gomod_file=$(gomod "$dir" "$module@$version") || return 1
  check_go "$gomod_file" "$module $version" || return 1
  (cd "$dir" && go mod edit -require="$module@$version") || return 1
  out="$WORK/$name-bin"
  mkdir -p "$out" || return 1
  log "building $name $version"
  (cd "$dir" && go build -ldflags="-s -w $ldflags" -o "$out/$name" "$pkg") || return 1
  install_tool "$out" "$name" "$version"
}

# CoreDNS with only the plugins a one-node cluster's DNS needs (images/coredns/main.go): the
# full plugin set pulls in every cloud provider's SDK and takes many times longer to build.
build_coredns() {
  local dir out
  dir=$(new_module coredns) || return 1
  check_go "$(gomod "$dir" "github.com/coredns/coredns@$COREDNS_VERSION")" \
    "github.com/coredns/coredns $COREDNS_VERSION" || return 1
  cp "$REPO/images/coredns/main.go" "$dir/main.go"
  (cd "$dir" && go mod edit -require="github.com/coredns/coredns@$COREDNS_VERSION") || return 1
  out="$WORK/coredns-bin"
  mkdir -p "$out"
  log "building coredns $COREDNS_VERSION"
  (cd "$dir" && go build -ldflags="-s -w" -o "$out/coredns" .) || return 1
  install_tool "$out" coredns "$COREDNS_VERSION"
}

if [[ $MODE == coredns ]]; then
  build_coredns || die "building coredns $COREDNS_VERSION failed"
  echo "$RESULT"
  exit 0
fi

if ! k8s_built; then build_kubernetes; fi
if ! built etcd "$ETCD_VERSION"; then
  build_one etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "" ||
    die "building etcd $ETCD_VERSION failed"
fi
if ! built helm "$HELM_VERSION"; then
  hv=helm.sh/helm/v3/internal/version
  build_one helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X $hv.version=$HELM_VERSION -X $hv.gitTreeState=clean" ||
    die "building helm $HELM_VERSION failed"
fi
if ! kwok_settled; then
  # kwok's source already carries its release number (pkg/consts.Version): no -X needed.
  if build_one kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ""; then
    rm -f "$STAMPS/kwok.failed"
  else
    echo "$KWOK_VERSION recipe $RECIPE" >"$STAMPS/kwok.failed"
    log "warning: kwok $KWOK_VERSION did not build (optional; not retried for this version)"
  fi
fi

all_built || die "some tools are still missing from $BIN"
echo "$BIN"

#!/usr/bin/env bash
# Build every image the chart, the local cluster and deploy/compose.yaml run, from this
# repository alone: nothing is pulled from an image registry.
#
#   scripts/build-images.sh            # builds what is missing; prints one saved image tarball a line
#   scripts/build-images.sh --check    # builds nothing: exit 0 (and print them) if all are saved
#   scripts/build-images.sh --load     # also leave the images tagged in the engine (make images)
#
# Images (TAG: the chart's appVersion, or ASRPOOL_IMAGE_TAG):
#   asrpool/base:bookworm            debootstrap --variant=minbase bookworm, `docker import`ed
#   ghcr.io/asrpool/worker:TAG       worker/Dockerfile    BASE_IMAGE=asrpool/base:bookworm (CPU)
#   ghcr.io/asrpool/router:TAG       router/Dockerfile    BASE_IMAGE=asrpool/base:bookworm
#   ghcr.io/asrpool/operator:TAG     operator/Dockerfile  BASE_IMAGE=asrpool/base:bookworm
#   asrpool/pause:1                  images/pause         the pod sandbox (containerd's sandbox_image)
#   asrpool/coredns:VERSION          images/coredns       cluster DNS (binary from build-k8s-tools.sh)
#
# Each image is saved (`docker save`) to ${ASRPOOL_CACHE:-$HOME/.cache/asrpool}/images/NAME-HASH.tar,
# HASH covering its Dockerfile, its build context's files and its base: when every tarball is
# there this is a fast no-op that needs no engine. The local cluster imports the tarballs into its
# containerd (`ctr images import`); compose `docker load`s them.
#
# Engine: the `docker` of DOCKER_HOST or the default socket when one answers; otherwise, as root
# with Debian's docker.io installed, a private dockerd (data under the cache, its socket there,
# no bridge and no iptables rules: RUN steps use the host network) started for the build and
# stopped after it. Builds use the classic builder (DOCKER_BUILDKIT=0): Debian packages no buildx.
# A cold build (debootstrap, pip installs of faster-whisper & co.) took about 8 minutes here.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ASRPOOL_CACHE:-$HOME/.cache/asrpool}
OUT="$CACHE/images"
SUITE=bookworm
MIRROR=${ASRPOOL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the way an image is built changes outside the files hashed below.
RECIPE=1
BASE_IMAGE="asrpool/base:$SUITE"
APP_VERSION=$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$REPO/charts/asrpool/Chart.yaml")
TAG=${ASRPOOL_IMAGE_TAG:-$APP_VERSION}

log() { echo "build-images: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

MODE=build
case "${1:-}" in
  --check) MODE=check ;;
  --load) MODE=load ;;
  "") ;;
  *) die "usage: $0 [--check|--load]" ;;
esac

COREDNS_VERSION=$("$REPO/scripts/build-k8s-tools.sh" --print-coredns-version)

# name|image|dockerfile|context (relative to the repo)|build arguments
IMAGES=(
  "worker|ghcr.io/asrpool/worker:$TAG|worker/Dockerfile|@python|BASE_IMAGE=$BASE_IMAGE"
  "router|ghcr.io/asrpool/router:$TAG|router/Dockerfile|@python|BASE_IMAGE=$BASE_IMAGE"
  "operator|ghcr.io/asrpool/operator:$TAG|operator/Dockerfile|@python|BASE_IMAGE=$BASE_IMAGE"
  "pause|asrpool/pause:1|images/pause/Dockerfile|images/pause|BASE_IMAGE=$BASE_IMAGE"
  "coredns|asrpool/coredns:$COREDNS_VERSION|images/coredns/Dockerfile|@coredns|"
)

# The Python images' context: what .dockerignore lets through (pyproject, README, the five
# packages), copied to a scratch directory so a CA file can join it without touching the checkout.
PYTHON_CONTEXT=(pyproject.toml README.md asrpool contract worker router operator)

# context_files CONTEXT: the files of a context, one a line, relative to the repo, sorted.
context_files() {
  case "$1" in
    @python)
      (cd "$REPO" && find "${PYTHON_CONTEXT[@]}" -type f \
        ! -path '*/__pycache__/*' ! -name '*.py[cod]' ! -path '*.egg-info/*' ! -name Dockerfile \
        | LC_ALL=C sort)
      ;;
    @coredns) ;;  # the binary: hashed by its version below
    *) (cd "$REPO" && find "$1" -type f | LC_ALL=C sort) ;;
  esac
}

# image_hash NAME IMAGE DOCKERFILE CONTEXT ARGS: what the saved tarball is keyed by.
image_hash() {
  {
    echo "recipe $RECIPE base $SUITE minbase $2 $5 coredns $COREDNS_VERSION"
    (cd "$REPO" && sha256sum "$3")
    context_files "$4" | (cd "$REPO" && xargs -r -d '\n' sha256sum)
  } | sha256sum | cut -c1-16
}

tarball() { echo "$OUT/$1-$(image_hash "$@").tar"; }

all_saved() {
  local spec name image file ctx args
  for spec in "${IMAGES[@]}"; do
    IFS='|' read -r name image file ctx args <<<"$spec"
    [[ -s "$(tarball "$name" "$image" "$file" "$ctx" "$args")" ]] || return 1
  done
}

print_tarballs() {
  local spec name image file ctx args
  for spec in "${IMAGES[@]}"; do
    IFS='|' read -r name image file ctx args <<<"$spec"
    tarball "$name" "$image" "$file" "$ctx" "$args"
  done
}

if [[ $MODE != load ]] && all_saved; then
  print_tarballs
  exit 0
fi
[[ $MODE == check ]] && exit 1

mkdir -p "$OUT" "$CACHE/docker"
exec 9>"$CACHE/docker/.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  log "another image build holds $CACHE/docker/.lock; waiting for it"
  flock 9
fi
if [[ $MODE != load ]] && all_saved; then
  print_tarballs
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/asrpool-images.XXXXXX")
DOCKERD_PID=
# Directories dockerd and its shims use whatever their configuration says: in dockerd's own
# mount namespace they are bound to directories under the cache, so nothing lands in the host's
# (and nothing races another engine's). Mount points made here are removed again (if free).
HOST_DIRS=(/run/docker /run/containerd)
MADE_DIRS=()
cleanup() {
  if [[ -n $DOCKERD_PID ]]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    # dockerd stops its containerd and shims before it exits.
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$DOCKERD_PID" 2>/dev/null || true
    for dir in "${MADE_DIRS[@]}"; do rmdir "$dir" 2>/dev/null || true; done
    # The build containers' cgroups (empty once dockerd is gone).
    for dir in /sys/fs/cgroup/*/asrpool-build; do
      [[ -d $dir ]] && { find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the engine
export DOCKER_BUILDKIT=0
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 ||
    die "no Docker engine answers and dockerd is not installed (scripts/ensure-system-packages.sh)"
  [[ $(id -u) == 0 ]] || die "no Docker engine answers; starting a private dockerd needs root"
  d="$CACHE/docker"
  export DOCKER_HOST="unix://$d/docker.sock"
  for dir in "${HOST_DIRS[@]}"; do
    [[ -e $dir ]] || { mkdir -p "$dir" && MADE_DIRS+=("$dir"); }
    mkdir -p "$d/run/${dir#/run/}"
  done
  log "starting a private dockerd (data in $d/data, log in $d/dockerd.log)"
  # --bridge=none, --iptables=false, --ip-forward=false: it changes nothing on the host's
  # network; builds run their RUN steps in the host's network namespace (--network host).
  # Its own mount namespace: its mounts (overlays, the netns it binds under exec-root) go
  # with it, even when it is killed.
  # shellcheck disable=SC2016  # $1 is the inner shell's
  unshare --mount --propagation slave sh -c \
    'mount --bind "$1/run/docker" /run/docker && mount --bind "$1/run/containerd" /run/containerd &&
     shift && exec "$@"' sh "$d" \
    dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
    -H "$DOCKER_HOST" --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --exec-opt native.cgroupdriver=cgroupfs --cgroup-parent=/asrpool-build \
    --containerd-namespace asrpool-build \
    --containerd-plugins-namespace asrpool-build-plugins >"$d/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited: $(tail -5 "$d/dockerd.log")"
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer in 60 s: $(tail -5 "$d/dockerd.log")"
fi

# --- the base: a minimal Debian root filesystem, imported as an image
build_base() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed"
  log "debootstrap --variant=minbase $SUITE (about a minute)"
  local root="$WORK/rootfs"
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    die "debootstrap failed: $(tail -5 "$WORK/debootstrap.log")"
  # What a container never needs: package caches and lists (apt-get update fetches them again).
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
  tar -C "$root" --numeric-owner -c . |
    docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
  log "imported $BASE_IMAGE"
}

# build_context CONTEXT DIR: the files docker build sees.
build_context() {
  local dir=$2
  mkdir -p "$dir"
  case "$1" in
    @python)
      (cd "$REPO" && context_files @python | xargs -r -d '\n' cp --parents -t "$dir")
      # Builds trust what this machine trusts (a TLS-inspecting proxy's CA, say): pip in the
      # build stage reads it; no runtime stage copies it.
      local ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
      if [[ -s $ca ]]; then cp "$ca" "$dir/build-ca.crt"; fi
      ;;
    @coredns)
      local bin
      bin=$("$REPO/scripts/build-k8s-tools.sh" --coredns) || die "building coredns failed"
      cp "$bin" "$dir/coredns"
      ;;
    *) cp -a "$REPO/$1/." "$dir/" ;;
  esac
}

build_one() {
  local name=$1 image=$2 file=$3 ctx=$4 args=$5 out dir argv=()
  out=$(tarball "$@")
  if [[ $MODE != load && -s $out ]]; then return 0; fi
  [[ -z $args ]] || argv+=(--build-arg "$args")
  dir="$WORK/ctx-$name"
  build_context "$ctx" "$dir"
  cp "$REPO/$file" "$dir/Dockerfile"
  log "building $image ($file)"
  local started=$SECONDS
  docker build --network host "${argv[@]}" -t "$image" "$dir" >"$WORK/$name.log" 2>&1 ||
    die "building $image failed:
$(tail -30 "$WORK/$name.log")"
  log "built $image in $((SECONDS - started)) s"
  if [[ ! -s $out ]]; then
    docker save "$image" >"$out.tmp" && mv -f "$out.tmp" "$out"
    # Older tarballs of this image are stale: keep only the newest.
    find "$OUT" -maxdepth 1 -name "$name-*.tar" ! -path "$out" -delete
  fi
}

build_base
for spec in "${IMAGES[@]}"; do
  IFS='|' read -r name image file ctx args <<<"$spec"
  build_one "$name" "$image" "$file" "$ctx" "$args"
done
print_tarballs

#!/usr/bin/env bash
# `make e2e-kind`: the tests/cluster suite (all but Compose) on a kind cluster, where kind runs:
# a laptop or CI runner with Docker and kind (https://kind.sigs.k8s.io). kind's node image
# comes from its registry; our images are built here (scripts/build-images.sh) and loaded
# into the node with `kind load image-archive`, so the chart pulls nothing.
#
#   make e2e-kind                       # creates cluster asrpool-e2e, tests, deletes it
#   ASRPOOL_KIND_KEEP=1 make e2e-kind   # keep the cluster afterwards (KUBECONFIG printed)
#
# Without kind the local cluster runs the same tests: `make test` (tests/cluster).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=${ASRPOOL_KIND_CLUSTER:-asrpool-e2e}
log() { echo "e2e-kind: $*" >&2; }
for tool in kind docker; do
  command -v "$tool" >/dev/null 2>&1 || { log "error: $tool is not installed"; exit 1; }
done

BIN=$("$REPO/scripts/build-k8s-tools.sh" | tail -n1)
mapfile -t TARBALLS < <("$REPO/scripts/build-images.sh")
KUBECONFIG_FILE=$(mktemp "${TMPDIR:-/tmp}/asrpool-kind.XXXXXX")

if ! kind get clusters 2>/dev/null | grep -qx "$NAME"; then
  log "creating kind cluster $NAME"
  kind create cluster --name "$NAME" --kubeconfig "$KUBECONFIG_FILE" --wait 180s
else
  kind get kubeconfig --name "$NAME" >"$KUBECONFIG_FILE"
fi
if [[ ${ASRPOOL_KIND_KEEP:-0} != 1 ]]; then
  trap 'kind delete cluster --name "$NAME" >/dev/null 2>&1 || true; rm -f "$KUBECONFIG_FILE"' EXIT
fi

for tar in "${TARBALLS[@]}"; do
  case $(basename "$tar") in
    pause-* | coredns-*) ;;  # kind brings its own sandbox image and DNS
    *) log "loading $(basename "$tar")" && kind load image-archive "$tar" --name "$NAME" ;;
  esac
done
# "A change of the pool's image" (tests/cluster/test_disruptions.py): the worker under a second tag.
TAG=$(awk '$1 == "appVersion:" {gsub(/"/, "", $2); print $2}' "$REPO/charts/asrpool/Chart.yaml")
for node in $(kind get nodes --name "$NAME"); do
  docker exec "$node" ctr -n k8s.io images tag --force \
    "ghcr.io/asrpool/worker:$TAG" "ghcr.io/asrpool/worker:$TAG-rollout" >/dev/null
done

log "running tests/cluster against kind cluster $NAME"
cd "$REPO"
ASRPOOL_TEST_KUBECONFIG=$KUBECONFIG_FILE PATH="$BIN:$PATH" \
  "$REPO/.venv/bin/python" -m pytest tests/cluster --ignore=tests/cluster/test_compose.py \
  -p no:cacheprovider "$@"
[[ ${ASRPOOL_KIND_KEEP:-0} == 1 ]] && log "kept: export KUBECONFIG=$KUBECONFIG_FILE"

#!/usr/bin/env bash
# The two secrets deploy/compose.yaml mounts, made once: an API key for clients and the token
# the router shows the workers (they refuse /v1 calls without it). Existing files are kept.
#
#   deploy/make-secrets.sh [DIR]      # default: deploy/secrets (git ignores it)
set -euo pipefail
dir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets}
mkdir -p "$dir"
# Only this user may look inside; the files themselves must be readable by the containers'
# user (10001), which a bind-mounted secret keeps the host's permissions for.
chmod 700 "$dir"
make_one() {
  [[ -s $dir/$1 ]] && return 0
  (umask 022 && echo "$2$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/$1")
  echo "made $dir/$1" >&2
}
make_one api-keys sk-asrpool-
make_one worker-token ""

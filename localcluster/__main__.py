"""``python -m localcluster up|down|status`` (``make cluster-up`` / ``make cluster-down``).

``up`` builds what is missing first (``scripts/build-k8s-tools.sh``, ``scripts/build-images.sh``:
cached under ``~/.cache/asrpool``, so only the first run is slow), starts the cluster and prints
``export KUBECONFIG=…`` as its last line. ``down`` stops it and removes all it made but the
caches. Both need root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from . import cluster
from .cluster import ClusterError
from .daemons import DaemonError
from .host import HostError

REPO = Path(__file__).resolve().parents[1]


def default_state(name: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "asrpool" / "clusters" / name


def build(script: str, *args: str) -> list[str]:
    """Run a build script (its progress on our stderr); its stdout lines."""
    result = subprocess.run(
        [str(REPO / "scripts" / script), *args], stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"localcluster: scripts/{script} failed (exit {result.returncode})")
    return [line for line in result.stdout.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("up", "down", "status"):
        sub.add_parser(command).add_argument(
            "--name", default=os.environ.get("ASRPOOL_CLUSTER", "local")
        )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("localcluster: a cluster's namespaces, cgroups and mounts need root", file=sys.stderr)
        return 1
    if args.command == "up":
        bin_dir = Path(build("build-k8s-tools.sh")[-1])
        images = [Path(p) for p in build("build-images.sh")]
        state = default_state(args.name)
        try:
            layout = cluster.up(args.name, bin_dir, images, state)
        except (ClusterError, DaemonError, HostError, subprocess.CalledProcessError) as e:
            print(f"localcluster: cluster {args.name!r} did not come up: {e}", file=sys.stderr)
            print(f"localcluster: logs in {state / 'logs'}", file=sys.stderr)
            return 1
        print(
            f"cluster {args.name!r} is up: node {layout.node_name} at {layout.node_ip}, "
            f"pods on {layout.pod_cidr}; logs in {layout.logs}",
            file=sys.stderr,
        )
        print(f"export KUBECONFIG={layout.kubeconfig}")
        return 0
    if args.command == "down":
        problems = cluster.down(args.name)
        for problem in problems:
            print(f"localcluster: {problem}", file=sys.stderr)
        return 1 if problems else 0
    entry = cluster.find(args.name)
    if entry is None:
        print(f"cluster {args.name!r} is not up")
        return 1
    print(f"cluster {args.name!r}: index {entry.index}, state {entry.state}")
    print(f"export KUBECONFIG={entry.layout.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

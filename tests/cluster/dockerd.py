"""A private Docker engine for the Compose test, in network and mount namespaces of its own.

``private_dockerd(workdir, images)`` starts Debian's ``dockerd`` in a network namespace the
test creates (``tests.support.netns.pod_host``: a veth from here, an address there), with its
data, sockets and containers' cgroups under names of its own, no iptables rules and no
forwarding; it loads our image tarballs and yields the engine's socket and the namespace's
address, where published ports answer. Everything goes when the ``with`` block ends: the
containers, the engine, the namespace with the bridge Compose made in it, the cgroups.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from localcluster.host import kill_all
from tests.support.netns import pod_host

# dockerd and its shims use these whatever their flags say; in the engine's mount namespace
# they are bound to directories of the test's own.
HOST_DIRS = ("/run/docker", "/run/containerd")


@dataclass(frozen=True)
class Engine:
    docker_host: str  # unix:///…/docker.sock
    ip: str  # the namespace's address: published ports answer here

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.docker_host, "DOCKER_BUILDKIT": "0"}

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout,
            check=True,
        )  # fmt: skip


@contextlib.contextmanager
def private_dockerd(workdir: Path, images: Sequence[Path]) -> Iterator[Engine]:
    tag = secrets.token_hex(3)
    cgroup_parent = f"/asrpool-compose-{tag}"
    made: list[Path] = []
    for d in HOST_DIRS:
        if not Path(d).exists():
            Path(d).mkdir(parents=True)
            made.append(Path(d))
    pids: set[int] = set()
    with pod_host() as ns:
        try:
            binds = []
            for d in HOST_DIRS:
                ours = workdir / d.strip("/").replace("/", "-")
                ours.mkdir(parents=True, exist_ok=True)
                binds.append(f"mount --bind '{ours}' '{d}'")
            socket = workdir / "docker.sock"
            log = open(workdir / "dockerd.log", "wb")  # noqa: SIM115 - closed below
            with log:
                argv = [
                    "dockerd",
                    f"--data-root={workdir / 'data'}",
                    f"--exec-root={workdir / 'exec'}",
                    f"--pidfile={workdir / 'dockerd.pid'}",
                    f"--host=unix://{socket}",
                    "--iptables=false",
                    "--ip-forward=false",
                    "--ip-masq=false",
                    "--bridge=none",
                    "--exec-opt=native.cgroupdriver=cgroupfs",
                    f"--cgroup-parent={cgroup_parent}",
                ]
                script = "\n".join(["set -e", *binds, 'exec "$@"'])
                proc = subprocess.Popen(
                    ["nsenter", f"--net=/run/netns/{ns.netns}", "--", "unshare", "--mount",
                     "--propagation=slave", "sh", "-c", script, "dockerd", *argv],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            pids.add(proc.pid)
            engine = Engine(f"unix://{socket}", ns.ip)
            deadline = time.monotonic() + 60
            while subprocess.run(
                ["docker", "info"], env=engine.env, capture_output=True
            ).returncode:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (workdir / "dockerd.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the private dockerd did not start:\n{tail}")
                time.sleep(0.5)
            for tar in images:
                engine.docker("load", "-i", str(tar), timeout=600)
            yield engine
        finally:
            _stop(pids, cgroup_parent, ns.netns)
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    d.rmdir()


def _stop(pids: set[int], cgroup_parent: str, netns: str) -> None:
    """dockerd stops its containers and containerd on SIGTERM; then whatever is left of the
    namespace's and the cgroups' processes is killed, and the cgroups removed."""
    kill_all(pids, grace_s=30)
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        root = hierarchy / cgroup_parent.lstrip("/")
        if not root.is_dir():
            continue
        for dirpath, _, _ in sorted(os.walk(root), key=lambda t: -len(t[0])):
            with contextlib.suppress(OSError):
                procs = {int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()}
                kill_all(procs, grace_s=0)
            with contextlib.suppress(OSError):
                Path(dirpath).rmdir()
    with contextlib.suppress(OSError):
        inode = os.stat(f"/run/netns/{netns}").st_ino
        kill_all(
            {int(p) for p in os.listdir("/proc") if p.isdigit() and _in_netns(p, inode)},
            grace_s=5,
        )


def _in_netns(pid: str, inode: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except OSError:
        return False

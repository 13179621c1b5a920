"""What the cluster makes on the host, and how it is all taken away again.

``create_node(layout)`` makes the node's network namespace (a veth to the host, a route to the
pods, forwarding and bridge netfilter switched on *there*), its mount namespace (held by one
``sleep`` process, with the binds of ``Layout.host_binds`` and the kubelet's sysctl files) and
the cgroup root of its pods. ``destroy_node(layout)`` undoes each of these, whatever state a
crash left them in: it kills every process of the node's namespaces and cgroups, deletes the
namespace (with it the veth, the bridge, the pods' veths and every iptables rule kube-proxy
wrote) and removes the cgroups and the mount points it had to create on the host.

Needs root, iproute2 and util-linux (nsenter).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .configs import KUBELET_SYSCTLS
from .layout import Layout

CGROUP_V1 = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")


class HostError(RuntimeError):
    """A host command failed; the message has its stderr."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise HostError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


# --- the node's namespaces


def holder_pid_file(layout: Layout) -> Path:
    return layout.pids / "node-namespaces.pid"


def holder_pid(layout: Layout) -> int | None:
    try:
        pid = int(holder_pid_file(layout).read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def enter(layout: Layout) -> list[str]:
    """The prefix that runs a command in the node's network and mount namespaces."""
    pid = holder_pid(layout)
    if pid is None:
        raise HostError(f"the namespaces of cluster {layout.name!r} are not held (not up?)")
    return ["nsenter", f"--target={pid}", "--mount", "--net", "--"]


def subnets_free(layout: Layout) -> bool:
    """No route or address of this host already covers the cluster's link or pod subnets."""
    routes = run("ip", "-4", "route", "show").stdout
    addrs = run("ip", "-4", "-o", "addr", "show").stdout
    prefixes = (layout.link_cidr.rsplit(".", 1)[0] + ".", layout.pod_cidr.rsplit(".", 1)[0] + ".")
    return not any(p in routes or p in addrs for p in prefixes)


def create_node(layout: Layout) -> None:
    """The network and mount namespaces and the cgroup root; raises HostError."""
    if (NETNS_DIR / layout.netns).exists():
        raise HostError(f"network namespace {layout.netns} exists: run `make cluster-down` first")
    run("ip", "netns", "add", layout.netns)
    ns = ["ip", "-n", layout.netns]
    run("ip", "link", "add", layout.host_link, "type", "veth", "peer", "name", "asrpool-tmp0")
    run("ip", "link", "set", "asrpool-tmp0", "netns", layout.netns)
    run(*ns, "link", "set", "asrpool-tmp0", "name", layout.node_link)
    run("ip", "addr", "add", f"{layout.host_ip}/30", "dev", layout.host_link)
    run("ip", "link", "set", layout.host_link, "up")
    run(*ns, "addr", "add", f"{layout.node_ip}/30", "dev", layout.node_link)
    run(*ns, "link", "set", layout.node_link, "up")
    run(*ns, "link", "set", "lo", "up")
    # Everything leaves the node towards the host; the host reaches the pods through the node.
    run(*ns, "route", "add", "default", "via", layout.host_ip)
    run("ip", "route", "add", layout.pod_cidr, "via", layout.node_ip, "dev", layout.host_link)
    # Per network namespace since Linux 5.3: the host's own settings do not change.
    for key in ("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"):
        run("ip", "netns", "exec", layout.netns, "sysctl", "-qw", key)
    _start_holder(layout)
    _create_cgroups(layout)


def _start_holder(layout: Layout) -> None:
    """A process in the node's network namespace whose mount namespace carries the node's
    binds; every daemon joins both with nsenter. Not `ip netns exec`: the fresh /sys it mounts
    has none of the host's cgroup mounts, which the kubelet and runc need."""
    lines = ["set -e"]
    for host_path, ours in layout.host_binds().items():
        ours.mkdir(parents=True, exist_ok=True)
        _make_mount_point(Path(host_path), layout)
        lines.append(f"mount --bind '{ours}' '{host_path}'")
    layout.sysctl_dir.mkdir(parents=True, exist_ok=True)
    for key, value in KUBELET_SYSCTLS.items():
        f = layout.sysctl_dir / key.replace("/", ".")
        f.write_text(value + "\n")
        lines.append(f"mount --bind '{f}' '/proc/sys/{key}'")
    lines.append("exec sleep infinity")
    layout.pids.mkdir(parents=True, exist_ok=True)
    log = open(layout.logs / "node-namespaces.log", "wb")  # noqa: SIM115 - the child holds it
    with log:
        proc = subprocess.Popen(
            [
                "nsenter",
                f"--net={NETNS_DIR / layout.netns}",
                "--",
                "unshare",
                "--mount",
                "--propagation=slave",
                "sh",
                "-c",
                "\n".join(lines),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    holder_pid_file(layout).write_text(f"{proc.pid}\n")
    # Ready when its mount namespace differs from ours and the last bind is in place.
    deadline = time.monotonic() + 10
    key, value = next(reversed(KUBELET_SYSCTLS.items()))
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _tail(layout, "node-namespaces")
            raise HostError(f"the node's namespace holder exited: {tail}")
        probe = run(*enter(layout), "cat", f"/proc/sys/{key}", check=False)
        if (
            probe.returncode == 0
            and probe.stdout.strip() == value
            and os.readlink(f"/proc/{proc.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        ):
            return
        time.sleep(0.1)
    raise HostError("the node's mount namespace was not set up within 10 s")


def _tail(layout: Layout, name: str) -> str:
    with contextlib.suppress(OSError):
        return (layout.logs / f"{name}.log").read_text(errors="replace")[-2000:]
    return ""


def _make_mount_point(path: Path, layout: Layout) -> None:
    """Create ``path`` on the host if missing, and remember to remove it again."""
    if path.exists():
        return
    path.mkdir(parents=True)
    made = layout.state / "made-mount-points"
    with made.open("a") as f:
        f.write(f"{path}\n")


# --- cgroups


def _hierarchies() -> list[Path]:
    """Every mounted cgroup v1 hierarchy (cpu, memory, …, name=systemd) and the unified one."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, mount_point = fields[sep + 1], fields[4]
            if fstype in ("cgroup", "cgroup2") and mount_point.startswith(str(CGROUP_V1)):
                found.append(Path(mount_point))
    return found


def _create_cgroups(layout: Layout) -> None:
    for h in _hierarchies():
        d = h / layout.cgroup_root.lstrip("/")
        d.mkdir(exist_ok=True)
        if (h / "cpuset.cpus").exists():
            # A new cpuset has no CPUs and no memory nodes until given its parent's.
            for key in ("cpuset.cpus", "cpuset.mems"):
                (d / key).write_text((h / key).read_text())


def _cgroup_dirs(layout: Layout) -> Iterator[Path]:
    """Every cgroup directory under the cluster's root, deepest first."""
    for h in _hierarchies():
        root = h / layout.cgroup_root.lstrip("/")
        if root.is_dir():
            for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
                yield Path(dirpath)


def _cgroup_pids(layout: Layout) -> set[int]:
    pids: set[int] = set()
    for d in _cgroup_dirs(layout):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
    return pids


def _netns_pids(layout: Layout) -> set[int]:
    """Processes in the node's network namespace (daemons, shims, the holder)."""
    try:
        want = os.stat(NETNS_DIR / layout.netns).st_ino
    except OSError:
        return set()
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino == want:
                    pids.add(int(entry))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return False


def kill_all(pids: set[int], grace_s: float) -> None:
    """SIGTERM, then SIGKILL what is still there after ``grace_s``."""
    me = os.getpid()
    pids = {p for p in pids if p != me}
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        pids = {p for p in pids if _alive(p)}
        if not pids:
            return


def kill_pods(layout: Layout) -> None:
    """Every process in the cluster's cgroups: the pods' containers and sandboxes."""
    kill_all(_cgroup_pids(layout), grace_s=0)


def destroy_node(layout: Layout) -> list[str]:
    """Undo ``create_node`` (and whatever daemons left); returns what could not be removed."""
    problems: list[str] = []
    kill_all(_cgroup_pids(layout), grace_s=0)
    kill_all(_netns_pids(layout), grace_s=5)
    pid = holder_pid(layout)
    if pid is not None:
        kill_all({pid}, grace_s=2)
    if (NETNS_DIR / layout.netns).exists():
        r = run("ip", "netns", "delete", layout.netns, check=False)
        if r.returncode != 0:
            problems.append(f"ip netns delete {layout.netns}: {r.stderr.strip()}")
    # Gone with the namespace, unless something still held it; the route goes with the link.
    if run("ip", "link", "show", layout.host_link, check=False).returncode == 0:
        run("ip", "link", "delete", layout.host_link, check=False)
    for d in _cgroup_dirs(layout):
        # A cgroup empties a moment after its last process is reaped.
        for _ in range(50):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                kill_all({int(p) for p in _read_procs(d)}, grace_s=0)
                time.sleep(0.1)
        else:
            problems.append(f"cgroup {d} is still busy")
    made = layout.state / "made-mount-points"
    with contextlib.suppress(OSError):
        for line in reversed(made.read_text().splitlines()):
            with contextlib.suppress(OSError):
                Path(line).rmdir()  # only if empty: never anything else's files
    return problems


def _read_procs(d: Path) -> list[str]:
    try:
        return (d / "cgroup.procs").read_text().split()
    except OSError:
        return []

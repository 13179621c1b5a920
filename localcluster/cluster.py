"""Bring a local cluster up, find it again, take it down.

``up(name, bin_dir, images)`` creates it from nothing (see the package docstring for what it is)
and returns its ``Layout``; ``down(name)`` removes every trace of it but the caches, from any
later process. Clusters are registered in ``/run/asrpool/clusters/NAME.json`` (an index, a
directory and, for test sessions, the pid that owns the cluster): ``up`` picks an index no
registered cluster uses, and first takes down clusters whose owner died without doing so.

Start-up order: the node's namespaces; etcd, the API server and containerd together (images are
imported while the API server starts); the controller-manager and scheduler; the kubelet, then
kube-proxy; CoreDNS once the node is Ready. A cold start takes about a minute, most of it the
image import.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import addons, configs, daemons, host, pki
from .layout import (
    APISERVER_PORT,
    ETCD_PEER_PORT,
    ETCD_PORT,
    MAX_INDEX,
    SERVICE_CIDR,
    Layout,
)

REGISTRY = Path("/run/asrpool/clusters")
STARTUP_TIMEOUT_S = 180.0


class ClusterError(RuntimeError):
    """The cluster could not be brought up or found; the message says which part and why."""


@dataclass(frozen=True)
class Entry:
    """What the registry remembers of a cluster."""

    name: str
    index: int
    state: str
    owner_pid: int | None = None

    @property
    def layout(self) -> Layout:
        return Layout(self.name, self.index, Path(self.state))


# --- the registry


@contextlib.contextmanager
def _registry_lock() -> Iterator[None]:
    REGISTRY.mkdir(parents=True, exist_ok=True)
    with open(REGISTRY / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def registered() -> list[Entry]:
    entries = []
    for path in sorted(REGISTRY.glob("*.json")):
        with contextlib.suppress(OSError, ValueError, TypeError):
            entries.append(Entry(**json.loads(path.read_text())))
    return entries


def find(name: str) -> Entry | None:
    return next((e for e in registered() if e.name == name), None)


def _register(entry: Entry) -> None:
    (REGISTRY / f"{entry.name}.json").write_text(json.dumps(entry.__dict__) + "\n")


def _unregister(name: str) -> None:
    with contextlib.suppress(OSError):
        (REGISTRY / f"{name}.json").unlink()


def _owner_dead(entry: Entry) -> bool:
    if entry.owner_pid is None:
        return False
    try:
        os.kill(entry.owner_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _pick_index(taken: set[int], name: str) -> Layout:
    for index in range(1, MAX_INDEX + 1):
        if index in taken:
            continue
        candidate = Layout(name, index, Path("/nonexistent"))
        if host.subnets_free(candidate):
            return candidate
    raise ClusterError(f"no free cluster index: {len(taken)} clusters are registered")


# --- up


def up(
    name: str,
    bin_dir: Path,
    images: Sequence[Path],
    state_dir: Path,
    owner_pid: int | None = None,
) -> Layout:
    """Create and start cluster ``name`` with its files under ``state_dir``; returns its layout.

    ``owner_pid``: a process whose death means the cluster is abandoned (a test session); the
    next ``up`` on this machine takes such a cluster down.
    """
    with _registry_lock():
        for entry in registered():
            if _owner_dead(entry):
                _down(entry)
        if find(name) is not None:
            raise ClusterError(f"cluster {name!r} is already up: `make cluster-down` first")
        index = _pick_index({e.index for e in registered()}, name).index
        if state_dir.exists():
            # Ours (nothing else names a directory after an unregistered cluster): the logs
            # a failed start kept, or a cluster lost with a reboot.
            subprocess.run(["rm", "-rf", "--one-file-system", str(state_dir)], check=True)
        layout = Layout(name, index, state_dir)
        entry = Entry(name, index, str(state_dir), owner_pid)
        layout.logs.mkdir(parents=True, exist_ok=True)
        _register(entry)
    try:
        _start(layout, bin_dir, images)
    except BaseException:
        with _registry_lock():
            _down(entry, keep_logs=True)
        raise
    return layout


def _start(layout: Layout, bin_dir: Path, images: Sequence[Path]) -> None:
    tokens = configs.Tokens(secrets.token_hex(24), secrets.token_hex(24), secrets.token_hex(24))
    _write_files(layout, tokens)
    host.create_node(layout)
    inside = host.enter(layout)

    _start_etcd(layout, bin_dir, inside)
    _start_apiserver(layout, bin_dir, inside)
    daemons.start(
        layout,
        "containerd",
        [*inside, "containerd", "--config", str(layout.containerd_config)],
    )
    daemons.wait_until(
        layout, "containerd", layout.containerd_socket.exists, 30, "serving its socket"
    )
    # The biggest part of a start: import while the API server comes up.
    imported: list[BaseException] = []
    importer = threading.Thread(target=_import_images, args=(layout, images, imported))
    importer.start()
    daemons.wait_until(
        layout,
        "kube-apiserver",
        daemons.https_ok(f"{layout.server}/readyz", layout.pki / "ca.crt", tokens.admin),
        STARTUP_TIMEOUT_S,
        "ready",
    )
    _start_controllers(layout, bin_dir, inside)
    importer.join()
    if imported:
        raise ClusterError(f"importing images into containerd failed: {imported[0]}")

    daemons.start(
        layout,
        "kubelet",
        [
            *inside,
            str(bin_dir / "kubelet"),
            f"--config={layout.state / 'kubelet.json'}",
            f"--kubeconfig={layout.state / 'kubelet.kubeconfig'}",
            f"--root-dir={layout.kubelet_dir}",
            f"--hostname-override={layout.node_name}",
            f"--node-ip={layout.node_ip}",
            "--v=1",
        ],
    )
    daemons.start(
        layout,
        "kube-proxy",
        [*inside, str(bin_dir / "kube-proxy"), f"--config={layout.state / 'kube-proxy.json'}"],
    )
    with _admin(layout, tokens.admin) as api:
        daemons.wait_until(
            layout, "kubelet", lambda: _node_ready(api, layout), STARTUP_TIMEOUT_S, "Ready"
        )
    kubectl = [str(bin_dir / "kubectl"), f"--kubeconfig={layout.kubeconfig}"]
    manifests = {"apiVersion": "v1", "kind": "List", "items": addons.coredns(coredns_image(images))}
    subprocess.run(
        [*kubectl, "apply", "-f", "-"],
        input=json.dumps(manifests),
        text=True,
        check=True,
        capture_output=True,
    )
    wait = [*kubectl, "-n", addons.NAMESPACE, "rollout", "status", f"deployment/{addons.NAME}"]
    result = subprocess.run([*wait, "--timeout=120s"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(f"CoreDNS did not become ready: {result.stderr or result.stdout}")


def coredns_image(images: Sequence[Path]) -> str:
    """The CoreDNS image among the tarballs (scripts/build-images.sh names them NAME-HASH.tar)."""
    for tar in images:
        if tar.name.startswith("coredns-"):
            return _image_name(tar)
    raise ClusterError("no coredns image among the images to import")


def _image_name(tar: Path) -> str:
    """The first tag a `docker save` tarball carries, as containerd names it."""
    import tarfile

    with tarfile.open(tar) as t:
        member = t.extractfile("manifest.json")
        if member is None:
            raise ClusterError(f"{tar}: no manifest.json")
        tag = json.load(member)[0]["RepoTags"][0]
    first = tag.split("/", 1)[0]
    if "/" not in tag or ("." not in first and ":" not in first and first != "localhost"):
        tag = f"docker.io/{tag}" if "/" in tag else f"docker.io/library/{tag}"
    return str(tag)


def _write_files(layout: Layout, tokens: configs.Tokens) -> None:
    pki.create(layout)
    ca = layout.pki / "ca.crt"
    tokens_csv = layout.pki / "tokens.csv"
    tokens_csv.write_text(configs.token_file(layout, tokens))
    tokens_csv.chmod(0o600)
    files = {
        layout.kubeconfig: configs.kubeconfig(layout.server, ca, tokens.admin, "asrpool-admin"),
        layout.state / "kubelet.kubeconfig": configs.kubeconfig(
            layout.server, ca, tokens.kubelet, f"system:node:{layout.node_name}"
        ),
        layout.state / "kube-proxy.kubeconfig": configs.kubeconfig(
            layout.server, ca, tokens.kube_proxy, "system:kube-proxy"
        ),
        layout.containerd_config: configs.containerd_config(layout),
        layout.cni_conf_dir / "10-asrpool.conflist": configs.cni_config(layout),
        layout.state / "kubelet.json": configs.kubelet_config(layout),
        layout.state / "kube-proxy.json": configs.kube_proxy_config(
            layout, layout.state / "kube-proxy.kubeconfig"
        ),
        layout.resolv_conf: configs.resolv_conf(),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if path.name.endswith("kubeconfig"):
            path.chmod(0o600)


def _start_etcd(layout: Layout, bin_dir: Path, inside: list[str]) -> None:
    client, peer = f"http://127.0.0.1:{ETCD_PORT}", f"http://127.0.0.1:{ETCD_PEER_PORT}"
    daemons.start(
        layout,
        "etcd",
        [
            *inside,
            str(bin_dir / "etcd"),
            f"--name={layout.node_name}",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={layout.node_name}={peer}",
            "--initial-cluster-state=new",
            # A throwaway cluster: skipping fsync keeps every write fast on a shared disk.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )


def _start_apiserver(layout: Layout, bin_dir: Path, inside: list[str]) -> None:
    p = layout.pki
    daemons.start(
        layout,
        "kube-apiserver",
        [
            *inside,
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            # The node's address: the host reaches it over the veth, pods through the
            # `kubernetes` Service (kube-proxy), whose endpoint this becomes.
            f"--bind-address={layout.node_ip}",
            f"--advertise-address={layout.node_ip}",
            f"--secure-port={APISERVER_PORT}",
            f"--cert-dir={layout.state / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--token-auth-file={p / 'tokens.csv'}",
            f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ],
    )


def _start_controllers(layout: Layout, bin_dir: Path, inside: list[str]) -> None:
    kubeconfig = str(layout.kubeconfig)
    delegated = [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # No front-proxy CA to look up: the failed lookups would only fill the log.
        "--authentication-skip-lookup=true",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
    ]
    p = layout.pki
    daemons.start(
        layout,
        "kube-controller-manager",
        [
            *inside,
            str(bin_dir / "kube-controller-manager"),
            *delegated,
            f"--cert-dir={layout.state / 'kcm-certs'}",
            "--controllers=*",
            "--use-service-account-credentials=false",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--cluster-signing-cert-file={p / 'ca.crt'}",
            f"--cluster-signing-key-file={p / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ],
    )
    daemons.start(
        layout,
        "kube-scheduler",
        [
            *inside,
            str(bin_dir / "kube-scheduler"),
            *delegated,
            f"--cert-dir={layout.state / 'scheduler-certs'}",
        ],
    )


def _import_images(layout: Layout, images: Sequence[Path], failed: list[BaseException]) -> None:
    try:
        for tar in images:
            ctr = [
                "ctr",
                f"--address={layout.containerd_socket}",
                "--namespace=k8s.io",
                "images",
                "import",
                str(tar),
            ]
            result = subprocess.run(ctr, capture_output=True, text=True, timeout=600)
            if result.returncode != 0:
                raise ClusterError(f"ctr images import {tar.name}: {result.stderr.strip()}")
    except BaseException as e:
        failed.append(e)


@contextlib.contextmanager
def _admin(layout: Layout, token: str) -> Iterator[httpx.Client]:
    import ssl

    with httpx.Client(
        base_url=layout.server,
        verify=ssl.create_default_context(cafile=str(layout.pki / "ca.crt")),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as client:
        yield client


def _node_ready(api: httpx.Client, layout: Layout) -> bool:
    r = api.get(f"/api/v1/nodes/{layout.node_name}")
    if r.status_code != 200:
        return False
    conditions = r.json().get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# --- down


def down(name: str, keep_logs: bool = False) -> list[str]:
    """Stop cluster ``name`` and remove it; returns what could not be removed (empty: all)."""
    with _registry_lock():
        entry = find(name)
        if entry is None:
            return []
        return _down(entry, keep_logs)


# Stopped first to last: nothing restarts what was stopped before it.
_ORDER = (
    "kubelet",
    "kube-proxy",
    "kube-scheduler",
    "kube-controller-manager",
    "containerd",
    "kube-apiserver",
    "etcd",
)


def _down(entry: Entry, keep_logs: bool = False) -> list[str]:
    layout = entry.layout
    daemons.stop(layout, "kubelet", grace_s=10)
    # The pods next, at once: their grace periods are the tests' business, not the teardown's.
    host.kill_pods(layout)
    for name in _ORDER[1:]:
        daemons.stop(layout, name, grace_s=10)
    problems = host.destroy_node(layout)
    if not problems:
        _remove_state(layout, keep_logs)
        _unregister(entry.name)
    return problems


def _remove_state(layout: Layout, keep_logs: bool) -> None:
    """The cluster's directory (its logs kept if asked). rm(1), not shutil.rmtree: the unpacked
    images are ~30,000 files, which rm removed in 4 s and rmtree in 27 s here."""
    if not layout.state.exists():
        return
    doomed = [layout.state]
    if keep_logs:
        doomed = [child for child in layout.state.iterdir() if child.name != "logs"]
    if doomed:
        subprocess.run(["rm", "-rf", "--one-file-system", *map(str, doomed)], check=False)


def wait_for_port(host_ip: str, port: int, timeout_s: float) -> bool:
    """A TCP connect to ``host_ip:port`` succeeds within ``timeout_s``."""
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host_ip, port), timeout=1):
            return True
        time.sleep(0.2)
    return False

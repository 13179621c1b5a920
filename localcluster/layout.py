"""One cluster's names, addresses, ports and paths, derived from its name, index and directory.

Pure: ``Layout(name, index, state)`` computes everything else, so the config writers, the host
setup and the teardown agree on every name without passing them around. The index (1..250) is
the only thing two clusters on one machine must not share: it picks the host↔node link and the
pod subnet, the only addresses visible outside the node's network namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Kubernetes' own defaults, private to the node's network namespace (kube-proxy's rules live
# there), so every cluster may use the same ones.
SERVICE_CIDR = "10.96.0.0/24"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
APISERVER_PORT = 6443
KUBELET_PORT = 10250
ETCD_PORT = 2379
ETCD_PEER_PORT = 2380

# Seen from the host: one /30 link and one /24 of pods per cluster (10.213/16 is the tests/k8s
# pod hosts', see tests/support/netns.py).
LINK_NET = "10.218"
POD_NET = "10.219"
MAX_INDEX = 250

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


@dataclass(frozen=True)
class Layout:
    name: str  # what `make cluster-up NAME=…` and the netns are called
    index: int  # 1..MAX_INDEX, unique among the clusters running on this machine
    state: Path  # every file of this cluster: configs, certificates, data, logs

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(
                f"cluster name {self.name!r}: at most 20 lowercase letters, digits and '-', "
                "starting with a letter"
            )
        if not 1 <= self.index <= MAX_INDEX:
            raise ValueError(f"cluster index {self.index} is not in 1..{MAX_INDEX}")

    # --- names

    @property
    def netns(self) -> str:
        return f"asrpool-node-{self.name}"

    @property
    def node_name(self) -> str:
        return f"asrpool-{self.name}"

    @property
    def host_link(self) -> str:
        """The host end of the host↔node veth (interface names have at most 15 characters)."""
        return f"asrpn{self.index}"

    node_link = "eth0"
    bridge = "cni0"

    @property
    def cni_network(self) -> str:
        """Names the CNI network, its IPAM data and its cached results."""
        return f"asrpool-{self.name}"

    @property
    def cgroup_root(self) -> str:
        return f"/asrpool-{self.name}"

    # --- addresses

    @property
    def host_ip(self) -> str:
        return f"{LINK_NET}.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"{LINK_NET}.{self.index}.2"

    @property
    def link_cidr(self) -> str:
        return f"{LINK_NET}.{self.index}.0/30"

    @property
    def pod_cidr(self) -> str:
        return f"{POD_NET}.{self.index}.0/24"

    @property
    def server(self) -> str:
        """The API server's URL, reachable from the host and from pods."""
        return f"https://{self.node_ip}:{APISERVER_PORT}"

    # --- paths

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig: what `make cluster-up` prints."""
        return self.state / "kubeconfig"

    @property
    def etcd_data(self) -> Path:
        return self.state / "etcd"

    @property
    def containerd_dir(self) -> Path:
        return self.state / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.containerd_dir / "config.toml"

    @property
    def runc_root(self) -> Path:
        return self.state / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.state / "cni" / "ipam"

    @property
    def kubelet_dir(self) -> Path:
        return self.state / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.state / "pod-logs"

    @property
    def resolv_conf(self) -> Path:
        return self.state / "resolv.conf"

    @property
    def sysctl_dir(self) -> Path:
        """Files the node's mount namespace shows in place of some host-wide sysctls."""
        return self.state / "sysctl"

    def host_binds(self) -> dict[str, Path]:
        """Host paths that containerd, its shims, libcni and the kubelet use whatever their
        configuration says, each bound in the node's mount namespace to a directory of ours."""
        return {
            "/run/containerd": self.state / "run-containerd",
            "/var/lib/cni": self.state / "cni" / "cache",
            "/var/log/containers": self.state / "container-logs",
        }

"""Every configuration file of the local cluster, as text, from a ``Layout`` (pure).

Each function returns what one file holds; ``cluster.py`` writes them. JSON is valid YAML, so the
Kubernetes configs are JSON. Why each setting is what it is, is said where it is set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layout import (
    CLUSTER_DOMAIN,
    DNS_SERVICE_IP,
    KUBELET_PORT,
    Layout,
)

# Debian's containernetworking-plugins install here.
CNI_BIN_DIR = "/usr/lib/cni"
PAUSE_IMAGE = "docker.io/asrpool/pause:1"

# What the kubelet insists on setting host-wide at start (pkg/kubelet/cm: setupKernelTunables).
# The node's mount namespace shows it files with these values instead, so it has nothing to
# change and the shared host keeps its own: vm.overcommit_memory stays heuristic, and an oops
# does not panic the machine.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens of the cluster's users (the API server's --token-auth-file)."""

    admin: str
    kubelet: str
    kube_proxy: str


def token_file(layout: Layout, tokens: Tokens) -> str:
    """token,user,uid,"groups": the admin, the node (Node authorizer) and kube-proxy (the
    built-in system:node-proxier binding names the user system:kube-proxy)."""
    node = f"system:node:{layout.node_name}"
    return (
        f'{tokens.admin},asrpool-admin,asrpool-admin,"system:masters"\n'
        f'{tokens.kubelet},{node},{node},"system:nodes"\n'
        f"{tokens.kube_proxy},system:kube-proxy,system:kube-proxy\n"
    )


def kubeconfig(server: str, ca_file: Path, token: str, user: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "asrpool",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "asrpool", "context": {"cluster": "asrpool", "user": user}}],
        "current-context": "asrpool",
    }
    return json.dumps(config, indent=2) + "\n"


def containerd_config(layout: Layout) -> str:
    """containerd 1.6 (config version 2): everything under the cluster's directory."""
    d = layout.containerd_dir
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{d / "root"}"
state = "{d / "state"}"
# Snapshotters this machine has no use for only fill the log with why they cannot start.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{layout.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[{cri}]
  # Built here (images/pause): nothing may be pulled from a registry.
  sandbox_image = "{PAUSE_IMAGE}"
  # The default oom_score_adj of a sandbox (-998) needs CAP_SYS_RESOURCE, which root lacks on
  # some VMs: runc then fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Pod network namespaces under our state, not /run/netns.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  # The kubelet's exec/attach/port-forward streams, inside the node's network namespace.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1

  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [{cri}.containerd.runtimes.runc.options]
        # runc's state, not /run/containerd/runc.
        Root = "{layout.runc_root}"
        # No systemd here: cgroupfs, as the kubelet is told too.
        SystemdCgroup = false
"""


def cni_config(layout: Layout) -> str:
    """A bridge in the node's namespace, pods on the cluster's /24, no masquerading: pod traffic
    has nowhere to go but the node, the host and other pods."""
    config = {
        "cniVersion": "1.0.0",
        "name": layout.cni_network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.bridge,
                "isGateway": True,
                "ipMasq": False,
                # A pod reaching itself through a Service comes back over its own port.
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.cni_ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def kubelet_config(layout: Layout) -> str:
    pki = layout.pki
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This machine has cgroup v1 (hybrid); Kubernetes >= 1.35 refuses it unless told.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        # Every pod under a cgroup of this cluster's own (the teardown removes it whole).
        "cgroupRoot": layout.cgroup_root,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": layout.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(pki / "kubelet.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet.key"),
        # Only holders of a client certificate from the cluster's CA (the API server) may use
        # the kubelet's API, and they may do everything.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(layout.resolv_conf),
        "podLogsDir": str(layout.pod_logs),
        "failSwapOn": False,
        # Our images cannot be pulled again: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # The disk is shared with everything else on this machine: evict pods only when it is
        # really full, not when someone else's build fills it to 90 %.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "serializeImagePulls": False,
        "maxPods": 110,
        # Shorter than the defaults: tests wait on pod status and endpoint changes.
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
    }
    return json.dumps(config, indent=2) + "\n"


def kube_proxy_config(layout: Layout, kubeconfig_file: Path) -> str:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_file)},
        "hostnameOverride": layout.node_name,
        "mode": "iptables",
        "clusterCIDR": layout.pod_cidr,
        "bindAddress": layout.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{layout.node_ip}/32"],
        # nf_conntrack_max is host-wide (settable only from the host's namespace): leave it.
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"syncPeriod": "30s", "minSyncPeriod": "1s"},
    }
    return json.dumps(config, indent=2) + "\n"


def resolv_conf() -> str:
    """The kubelet's resolv.conf: no upstream name server. ClusterFirst pods get CoreDNS; names
    outside cluster.local do not resolve, as no pod traffic leaves the machine."""
    return "# asrpool local cluster: no upstream DNS\noptions ndots:5\n"

"""The local cluster's names, addresses and config files, as tables (no processes started)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from localcluster import addons, configs
from localcluster.layout import DNS_SERVICE_IP, MAX_INDEX, Layout


def layout(name: str = "dev", index: int = 7) -> Layout:
    return Layout(name, index, Path("/state/dev"))


@pytest.mark.parametrize(
    ("index", "host", "node", "pods"),
    [
        (1, "10.218.1.1", "10.218.1.2", "10.219.1.0/24"),
        (MAX_INDEX, "10.218.250.1", "10.218.250.2", "10.219.250.0/24"),
    ],
)
def test_the_index_alone_picks_the_addresses_the_host_sees(
    index: int, host: str, node: str, pods: str
) -> None:
    lay = layout(index=index)
    assert (lay.host_ip, lay.node_ip, lay.pod_cidr) == (host, node, pods)
    assert lay.server == f"https://{node}:6443"
    assert len(lay.host_link) <= 15  # Linux interface names


@pytest.mark.parametrize("name", ["", "Dev", "1dev", "a" * 21, "dev_1", "dev.1"])
def test_names_that_cannot_name_a_namespace_and_a_cgroup_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cluster name"):
        layout(name=name)


@pytest.mark.parametrize("index", [0, MAX_INDEX + 1])
def test_indexes_outside_the_subnets_are_refused(index: int) -> None:
    with pytest.raises(ValueError, match="index"):
        layout(index=index)


def test_every_host_path_the_node_insists_on_is_bound_inside_the_clusters_directory() -> None:
    binds = layout().host_binds()
    assert set(binds) == {"/run/containerd", "/var/lib/cni", "/var/log/containers"}
    assert all(Path("/state/dev") in ours.parents for ours in binds.values())


def test_containerd_keeps_everything_under_the_cluster_and_restricts_oom_score_adj() -> None:
    lay = layout()
    config = tomllib.loads(configs.containerd_config(lay))
    assert config["version"] == 2
    assert config["root"].startswith("/state/dev/") and config["state"].startswith("/state/dev/")
    assert config["grpc"]["address"] == str(lay.containerd_socket)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert (
        cri["restrict_oom_score_adj"] is True
    )  # else runc fails where root lacks CAP_SYS_RESOURCE
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == configs.PAUSE_IMAGE
    assert cri["cni"]["conf_dir"] == str(lay.cni_conf_dir)
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc == {"Root": str(lay.runc_root), "SystemdCgroup": False}


def test_pods_get_the_clusters_subnet_on_a_bridge_without_masquerading() -> None:
    config = json.loads(configs.cni_config(layout()))
    bridge = config["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is False and bridge["isGateway"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.219.7.0/24"}]]
    assert bridge["ipam"]["dataDir"].startswith("/state/dev/")


def test_the_kubelet_runs_on_cgroup_v1_under_the_clusters_root_and_keeps_our_images() -> None:
    lay = layout()
    config = json.loads(configs.kubelet_config(lay))
    assert config["failCgroupV1"] is False and config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == "/asrpool-dev"
    assert config["imageGCHighThresholdPercent"] == 100  # nothing here can be pulled again
    assert config["clusterDNS"] == [DNS_SERVICE_IP]
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["address"] == lay.node_ip


def test_kube_proxy_leaves_the_hosts_conntrack_table_alone() -> None:
    config = json.loads(configs.kube_proxy_config(layout(), Path("/k")))
    assert config["conntrack"] == {"maxPerCore": 0, "min": 0}
    assert config["clusterCIDR"] == "10.219.7.0/24" and config["mode"] == "iptables"


def test_the_token_file_gives_the_node_and_kube_proxy_their_built_in_identities() -> None:
    lines = configs.token_file(layout(), configs.Tokens("a", "k", "p")).splitlines()
    assert lines == [
        'a,asrpool-admin,asrpool-admin,"system:masters"',
        'k,system:node:asrpool-dev,system:node:asrpool-dev,"system:nodes"',
        "p,system:kube-proxy,system:kube-proxy",
    ]


def test_the_kubelet_finds_the_sysctls_it_wants_instead_of_changing_the_hosts() -> None:
    assert configs.KUBELET_SYSCTLS["vm/overcommit_memory"] == "1"
    assert configs.KUBELET_SYSCTLS["kernel/panic_on_oops"] == "1"


def test_coredns_answers_for_the_cluster_domain_only_as_an_unprivileged_pod() -> None:
    docs = {d["kind"]: d for d in addons.coredns("docker.io/asrpool/coredns:v1")}
    assert docs["Service"]["spec"]["clusterIP"] == DNS_SERVICE_IP
    assert "forward" not in addons.COREFILE  # no upstream: pod traffic stays on the machine
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["image"] == "docker.io/asrpool/coredns:v1"
    assert {p["targetPort"] for p in docs["Service"]["spec"]["ports"]} == {addons.PORT}

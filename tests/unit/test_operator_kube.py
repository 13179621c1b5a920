"""The operator's API seam: the exact requests it sends, and errors mapped once.

httpx2's MockTransport (lightkube's transport) stands in for the API server here only to pin
the wire shape of each call cheaply; tests/k8s runs the same client against a real
kube-apiserver.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from lightkube import Client, KubeConfig
from lightkube.config.models import Cluster, User

from asrpool_operator.kube import PODS, POOLS, Conflict, KubeClient, KubeError, kopf_login

Seen = list[httpx2.Request]


def kube_client(handle: Callable[[httpx2.Request], httpx2.Response]) -> KubeClient:
    """Our client on lightkube's, logged in with a token, answered by ``handle``."""
    config = KubeConfig.from_one(cluster=Cluster(server="https://api.test"), user=User(token="t0k"))
    return KubeClient(Client(config, transport=httpx2.MockTransport(handle)))


def client(status: int = 200, body: object = None, seen: Seen | None = None) -> KubeClient:
    def handle(request: httpx2.Request) -> httpx2.Response:
        if seen is not None:
            seen.append(request)
        return httpx2.Response(status, json=body if body is not None else {})

    return kube_client(handle)


def test_apply_is_a_forced_server_side_apply_by_the_operators_field_manager() -> None:
    seen: Seen = []
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w", "namespace": "speech"},
        "spec": {"replicas": 2},
    }
    client(seen=seen).apply(manifest)
    (req,) = seen
    assert req.method == "PATCH"
    assert req.url.path == "/apis/apps/v1/namespaces/speech/deployments/w"
    assert dict(req.url.params) == {"fieldManager": "asrpool-operator", "force": "true"}
    assert req.headers["content-type"] == "application/apply-patch+yaml"
    assert req.headers["authorization"] == "Bearer t0k"
    assert json.loads(req.content) == manifest


def test_status_and_scale_are_merge_patches_on_their_subresources() -> None:
    seen: Seen = []
    kube = client(seen=seen)
    kube.patch_status(POOLS, "speech", "p", {"readyReplicas": 1})
    kube.scale(POOLS, "speech", "p", 4)
    assert [r.url.path for r in seen] == [
        "/apis/asrpool.dev/v1alpha1/namespaces/speech/asrpools/p/status",
        "/apis/asrpool.dev/v1alpha1/namespaces/speech/asrpools/p/scale",
    ]
    assert {r.headers["content-type"] for r in seen} == {"application/merge-patch+json"}
    assert [json.loads(r.content) for r in seen] == [
        {"status": {"readyReplicas": 1}},
        {"spec": {"replicas": 4}},
    ]


def test_a_pods_deletion_cost_is_a_merge_patch_of_its_annotations() -> None:
    seen: Seen = []
    body = {"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "0"}}}
    client(seen=seen).patch(PODS, "speech", "w-1", body)
    (req,) = seen
    assert (req.method, req.url.path) == ("PATCH", "/api/v1/namespaces/speech/pods/w-1")
    assert req.headers["content-type"] == "application/merge-patch+json"
    assert json.loads(req.content) == body


def test_list_sends_the_label_selector_and_returns_the_items_as_dicts() -> None:
    seen: Seen = []
    items = client(body={"items": [{"metadata": {"name": "a"}}]}, seen=seen).list(
        PODS, "speech", {"asrpool.dev/pool": "x"}
    )
    assert items == [{"metadata": {"name": "a"}}] and type(items[0]) is dict
    assert seen[0].url.path == "/api/v1/namespaces/speech/pods"
    assert seen[0].url.params["labelSelector"] == "asrpool.dev/pool=x"


def test_no_namespace_lists_in_every_namespace() -> None:
    seen: Seen = []
    client(body={"items": []}, seen=seen).list(POOLS, None)
    assert seen[0].url.path == "/apis/asrpool.dev/v1alpha1/asrpools"


def test_get_of_a_missing_object_is_none() -> None:
    status = {"kind": "Status", "code": 404, "message": "not found"}
    assert client(404, status).get(PODS, "speech", "gone") is None


@pytest.mark.parametrize(("status", "error"), [(409, Conflict), (403, KubeError), (500, KubeError)])
def test_refusals_raise_with_the_api_servers_message(status: int, error: type[KubeError]) -> None:
    body = {"kind": "Status", "code": status, "message": "forbidden: no"}
    with pytest.raises(error, match="forbidden: no") as err:
        client(status, body).get(PODS, "speech", "x")
    assert err.value.status == status


def test_no_answer_is_a_kube_error_with_status_zero() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    with pytest.raises(KubeError) as err:
        kube_client(refuse).list(PODS, "speech")
    assert err.value.status == 0


def test_kopf_logs_in_as_lightkube_reads_the_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watches get the calls' login: an exec plugin's token, a client certificate named
    relative to the kubeconfig, the context's namespace (kopf's own login reads no exec)."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',"
        " 'kind': 'ExecCredential', 'status': {'token': 'fr0m-plugin'}}))\n"
    )
    exec_ = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": [str(plugin)],
    }
    config = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "ns"}}],
        "clusters": [
            {
                "name": "k",
                "cluster": {"server": "https://k:6443", "certificate-authority-data": "Q0E="},
            }
        ],
        "users": [
            {
                "name": "u",
                "user": {"client-certificate": "u.crt", "client-key": "u.key", "exec": exec_},
            }
        ],
    }
    (tmp_path / "config").write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    info = kopf_login()
    assert (info.server, info.ca_data, info.insecure) == ("https://k:6443", "Q0E=", False)
    assert (info.scheme, info.token) == ("Bearer", "fr0m-plugin")
    assert (info.certificate_path, info.private_key_path) == (
        tmp_path / "u.crt",
        tmp_path / "u.key",
    )
    assert info.default_namespace == "ns"

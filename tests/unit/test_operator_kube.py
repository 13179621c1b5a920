"""The operator's REST seam: the exact requests it sends, and errors mapped once.

httpx's MockTransport stands in for the API server here only to pin the wire shape of each
call cheaply; tests/k8s runs the same client against a real kube-apiserver.
"""

from __future__ import annotations

import json

import httpx
import pytest

from asrpool_operator.kube import (
    DEPLOYMENTS,
    HPAS,
    PODS,
    POOLS,
    Conflict,
    KubeClient,
    KubeError,
    Resource,
)

Seen = list[httpx.Request]


def client(status: int = 200, body: object = None, seen: Seen | None = None) -> KubeClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body if body is not None else {})

    http = httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(handle))
    return KubeClient(http, token=lambda: "Bearer t0k")


@pytest.mark.parametrize(
    ("res", "namespace", "name", "sub", "path"),
    [
        (PODS, "speech", None, None, "/api/v1/namespaces/speech/pods"),
        (DEPLOYMENTS, "speech", "w", None, "/apis/apps/v1/namespaces/speech/deployments/w"),
        (POOLS, "speech", "p", "scale",
         "/apis/asrpool.dev/v1alpha1/namespaces/speech/asrpools/p/scale"),
        (POOLS, None, None, None, "/apis/asrpool.dev/v1alpha1/asrpools"),
        (HPAS, "speech", None, None,
         "/apis/autoscaling/v2/namespaces/speech/horizontalpodautoscalers"),
        (Resource("v1", "namespaces"), None, "x", None, "/api/v1/namespaces/x"),
    ],
)  # fmt: skip
def test_paths(
    res: Resource, namespace: str | None, name: str | None, sub: str | None, path: str
) -> None:
    assert res.path(namespace, name, sub) == path


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
    assert [r.url.path.rsplit("/", 1)[1] for r in seen] == ["status", "scale"]
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


def test_list_sends_the_label_selector_and_returns_the_items() -> None:
    seen: Seen = []
    items = client(body={"items": [{"metadata": {"name": "a"}}]}, seen=seen).list(
        PODS, "speech", "asrpool.dev/pool=x"
    )
    assert items == [{"metadata": {"name": "a"}}]
    assert seen[0].url.params["labelSelector"] == "asrpool.dev/pool=x"


def test_get_of_a_missing_object_is_none() -> None:
    assert client(404, {"message": "not found"}).get(PODS, "speech", "gone") is None


@pytest.mark.parametrize(("status", "error"), [(409, Conflict), (403, KubeError), (500, KubeError)])
def test_refusals_raise_with_the_api_servers_message(status: int, error: type[KubeError]) -> None:
    with pytest.raises(error, match="forbidden: no") as err:
        client(status, {"message": "forbidden: no"}).get(PODS, "speech", "x")
    assert err.value.status == status


def test_no_answer_is_a_kube_error_with_status_zero() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    kube = KubeClient(
        httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(refuse))
    )
    with pytest.raises(KubeError) as err:
        kube.list(PODS, "speech")
    assert err.value.status == 0

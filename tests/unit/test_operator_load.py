"""Reading the routers' pages: the ones that answered, and the ready ones that did not.

MockTransports stand in for the API server and the routers here only to pin what
``RouterLoad.read`` makes of partial answers; tests/k8s reads real routers.
"""

from __future__ import annotations

import httpx
import httpx2

from asrpool_operator.load import RouterLoad, RouterPages, RouterTarget
from asrpool_operator.logic.router_metrics import PoolSample
from tests.unit.test_operator_kube import kube_client

PAGE = 'asrpool_router_queue_depth{pool="m"} 3\n'


def router_pod(name: str, ip: str, ready: bool = True) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


def reader(pods: list[dict[str, object]], answers: dict[str, object]) -> RouterLoad:
    kube = kube_client(lambda r: httpx2.Response(200, json={"items": pods}))

    def router(request: httpx.Request) -> httpx.Response:
        answer = answers[request.url.host]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, str)
        return httpx.Response(200, text=answer)

    http = httpx.Client(transport=httpx.MockTransport(router))
    return RouterLoad(kube, RouterTarget("speech", {"app": "router"}, 8000), http)


def test_routers_that_answer_count_and_the_others_are_named() -> None:
    load = reader(
        [router_pod("r-1", "10.0.0.1"), router_pod("r-2", "10.0.0.2"),
         router_pod("r-3", "10.0.0.3", ready=False)],
        {"10.0.0.1": PAGE, "10.0.0.2": httpx.ConnectError("refused")},
    )  # fmt: skip
    assert load.read() == RouterPages({"r-1": {"m": PoolSample(queue_depth=3.0)}}, ("r-2",))


def test_no_ready_router_is_no_load_at_all() -> None:
    assert reader([router_pod("r-1", "10.0.0.1", ready=False)], {}).read() is None


def test_a_page_that_is_not_prometheus_counts_as_missing() -> None:
    load = reader([router_pod("r-1", "10.0.0.1")], {"10.0.0.1": 'x{pool="m" 1\n'})
    assert load.read() == RouterPages({}, ("r-1",))

"""The operator's one door to the Kubernetes API: lightkube's sync client, and kopf's login.

``KubeClient.from_config()`` logs in as lightkube reads the environment (the in-cluster service
account, else the current context of the kubeconfig that ``KUBECONFIG`` or ``~/.kube/config``
names: tokens, token files, client certificates, exec plugins); ``kopf_login`` hands kopf the
same login, so the watches and these calls see the same cluster as the same user. A token that
rotates (the projected service-account token, an exec plugin's) is asked for again when the API
server answers 401. Bodies go in and come out as plain dicts (lightkube's generic resources, no
models): the pure core never sees a client object. Sync on purpose: the handlers run in kopf's
thread pool, the resync in a thread.

Errors, mapped once in ``_mapped``::

    KubeError        the API server answered other than 2xx, or not at all
    ├── NotFound     404 (``get`` returns None instead)
    └── Conflict     409
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx2
import kopf
from lightkube import ALL_NS, ApiError, Client, ConfigError, KubeConfig
from lightkube.config.client_adapter import user_auth
from lightkube.generic_resource import (
    GenericNamespacedResource,
    create_namespaced_resource,
    get_generic_resource,
)
from lightkube.types import PatchType

from .logic.labels import MANAGED_BY
from .logic.spec import API_VERSION, KIND, PLURAL


class KubeError(Exception):
    """The API server refused a call or did not answer; ``status`` is 0 for no answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}" if status else message)


class NotFound(KubeError):
    """The object (or its namespace) does not exist."""


class Conflict(KubeError):
    """Someone else changed the object, or it already exists."""


Resource = type[GenericNamespacedResource]


def _resource(api_version: str, kind: str, plural: str) -> Resource:
    group, _, version = api_version.rpartition("/")
    return create_namespaced_resource(group, version, kind, plural)


POOLS = _resource(API_VERSION, KIND, PLURAL)
DEPLOYMENTS = _resource("apps/v1", "Deployment", "deployments")
SERVICES = _resource("v1", "Service", "services")
DISRUPTION_BUDGETS = _resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
PODS = _resource("v1", "Pod", "pods")
EVENTS = _resource("v1", "Event", "events")
HPAS = _resource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")


def resource_of(manifest: Mapping[str, Any]) -> Resource:
    res = get_generic_resource(manifest["apiVersion"], manifest["kind"])
    assert res is not None and issubclass(res, GenericNamespacedResource), manifest["kind"]
    return res


class KubeClient:
    def __init__(self, client: Client) -> None:
        self._client = client

    @classmethod
    def from_config(cls, timeout: float = 30.0) -> KubeClient:
        """In-cluster first, then the kubeconfig."""
        return cls(Client(timeout=httpx2.Timeout(timeout)))

    def close(self) -> None:
        self._client.close()

    # --- calls

    def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            with _mapped():
                return dict(self._client.get(res, name, namespace=namespace))
        except NotFound:
            return None

    def list(
        self, res: Resource, namespace: str | None, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every object in ``namespace`` (None: in all namespaces) with those labels."""
        selected: dict[str, Any] | None = dict(labels) if labels else None
        with _mapped():
            found = self._client.list(res, namespace=namespace or ALL_NS, labels=selected)
            return [dict(obj) for obj in found]

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator's field manager, taking over fields it set."""
        obj = resource_of(manifest)(**manifest)
        with _mapped():
            return dict(self._client.apply(obj, field_manager=MANAGED_BY, force=True))

    def patch_status(
        self, res: Resource, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        self._merge(res.Status, namespace, name, {"status": dict(status)})

    def patch(self, res: Resource, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """A JSON merge patch (the pods' deletion-cost annotations)."""
        self._merge(res, namespace, name, dict(body))

    def scale(self, res: Resource, namespace: str, name: str, replicas: int) -> None:
        """Set replicas through the scale subresource, as an HPA does."""
        self._merge(res.Scale, namespace, name, {"spec": {"replicas": replicas}})

    def create(self, res: Resource, namespace: str, body: Mapping[str, Any]) -> None:
        with _mapped():
            self._client.create(res(**body), namespace=namespace)

    def _merge(self, res: Any, namespace: str, name: str, body: dict[str, Any]) -> None:
        with _mapped():
            self._client.patch(res, name, body, namespace=namespace, patch_type=PatchType.MERGE)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except httpx2.HTTPStatusError as e:  # ApiError too: the API server's Status, when it sent one
        code, request = e.response.status_code, e.request
        message = e.status.message if isinstance(e, ApiError) else e.response.text
        error = {404: NotFound, 409: Conflict}.get(code, KubeError)
        raise error(code, f"{request.method} {request.url.path}: {message}") from e
    except (httpx2.HTTPError, ConfigError) as e:  # no answer, or no credentials (exec failed)
        raise KubeError(0, repr(e)) from e


def kopf_login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's login handler: lightkube's reading of the config, the one ``KubeClient`` uses
    (kopf's own kubeconfig login runs no exec plugin and reads no token file)."""
    config = KubeConfig.from_env().get()
    assert config is not None  # from_env gives a current context or raises
    cluster, user = config.cluster, config.user
    # The Authorization header lightkube would send: a token, a token file's, an exec plugin's.
    auth = user_auth(user) if user else None
    probe = httpx2.Request("GET", cluster.server)
    if auth is not None:
        next(auth.sync_auth_flow(probe))
    scheme, _space, token = probe.headers.get("Authorization", "").partition(" ")
    return kopf.ConnectionInfo(
        server=cluster.server,
        ca_path=config.abs_file(cluster.certificate_auth) if cluster.certificate_auth else None,
        ca_data=cluster.certificate_auth_data,
        insecure=cluster.insecure,
        scheme=scheme or None,
        token=token or None,
        certificate_path=config.abs_file(user.client_cert) if user and user.client_cert else None,
        certificate_data=user.client_cert_data if user else None,
        private_key_path=config.abs_file(user.client_key) if user and user.client_key else None,
        private_key_data=user.client_key_data if user else None,
        default_namespace=config.context.namespace,
    )

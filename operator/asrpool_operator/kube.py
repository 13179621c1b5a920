"""The operator's one door to the Kubernetes API: a handful of REST calls over httpx.

``KubeClient.from_config()`` logs in the way kopf does (the in-cluster service account, else
the kubeconfig that ``KUBECONFIG`` or ``~/.kube/config`` names, read by ``kubernetes.config``),
so the watches and these calls see the same cluster as the same user. A token that rotates (the
projected service-account token, an exec plugin) is asked for again on every call through the
config's refresh hook. Bodies go in and come out as plain dicts: the pure core never sees a
client object. Sync on purpose: the handlers run in kopf's thread pool, the resync in a thread.

Errors, mapped once in ``_check``::

    KubeError        the API server answered other than 2xx, or not at all
    ├── NotFound     404 (``get`` returns None instead)
    └── Conflict     409
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .logic.labels import MANAGED_BY
from .logic.spec import API_VERSION, PLURAL

APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML: server-side apply takes it
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """The API server refused a call or did not answer; ``status`` is 0 for no answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}" if status else message)


class NotFound(KubeError):
    """The object (or its namespace) does not exist."""


class Conflict(KubeError):
    """Someone else changed the object, or it already exists."""


@dataclass(frozen=True)
class Resource:
    """A REST collection: ``/apis/GROUP/VERSION[/namespaces/NS]/PLURAL``."""

    api_version: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [root]
        if namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
        if sub:
            parts.append(sub)
        return "/".join(parts)


POOLS = Resource(API_VERSION, PLURAL)
DEPLOYMENTS = Resource("apps/v1", "deployments")
SERVICES = Resource("v1", "services")
DISRUPTION_BUDGETS = Resource("policy/v1", "poddisruptionbudgets")
PODS = Resource("v1", "pods")
EVENTS = Resource("v1", "events")
HPAS = Resource("autoscaling/v2", "horizontalpodautoscalers")
_BY_KIND = {
    ("apps/v1", "Deployment"): DEPLOYMENTS,
    ("v1", "Service"): SERVICES,
    ("policy/v1", "PodDisruptionBudget"): DISRUPTION_BUDGETS,
    ("v1", "Event"): EVENTS,
}


def resource_of(manifest: Mapping[str, Any]) -> Resource:
    return _BY_KIND[(manifest["apiVersion"], manifest["kind"])]


class KubeClient:
    def __init__(self, http: httpx.Client, token: Callable[[], str | None] = lambda: None) -> None:
        self._http = http
        self._token = token

    @classmethod
    def from_config(cls, kubeconfig: str | None = None, timeout: float = 30.0) -> KubeClient:
        """Log in as kopf does: in-cluster first, then the kubeconfig."""
        from kubernetes import client, config  # the config loaders only: no API objects

        cfg = client.Configuration()
        in_cluster = False
        if kubeconfig is None:
            try:
                config.load_incluster_config(client_configuration=cfg)
                in_cluster = True
            except config.ConfigException:
                pass  # not in a pod: the developer's kubeconfig
        if not in_cluster:
            config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        tls = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if not cfg.verify_ssl:
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            tls.load_cert_chain(cfg.cert_file, cfg.key_file)

        def token() -> str | None:
            # Calls the refresh hook: a rotated service-account token is read again.
            header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
                "authorization"
            )
            return str(header) if header else None

        http = httpx.Client(base_url=cfg.host, verify=tls, timeout=timeout)
        return cls(http, token)

    def close(self) -> None:
        self._http.close()

    # --- calls

    def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", res.path(namespace, name))
        except NotFound:
            return None

    def list(
        self, res: Resource, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        items = self._call("GET", res.path(namespace), params=params).get("items") or []
        return [dict(i) for i in items]

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator's field manager, taking over fields it set."""
        meta = manifest["metadata"]
        return self._call(
            "PATCH",
            resource_of(manifest).path(meta.get("namespace"), meta["name"]),
            params={"fieldManager": MANAGED_BY, "force": "true"},
            body=manifest,
            content_type=APPLY_PATCH,
        )

    def patch_status(
        self, res: Resource, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._call(
            "PATCH",
            res.path(namespace, name, "status"),
            body={"status": status},
            content_type=MERGE_PATCH,
        )

    def patch(
        self, res: Resource, namespace: str, name: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch (the pods' deletion-cost annotations)."""
        return self._call("PATCH", res.path(namespace, name), body=body, content_type=MERGE_PATCH)

    def scale(self, res: Resource, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """Set replicas through the scale subresource, as an HPA does."""
        return self._call(
            "PATCH",
            res.path(namespace, name, "scale"),
            body={"spec": {"replicas": replicas}},
            content_type=MERGE_PATCH,
        )

    def create(self, res: Resource, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", res.path(namespace), body=body)

    # --- the transport

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        try:
            response = self._http.request(
                method, path, params=params, headers=headers, content=content
            )
        except httpx.HTTPError as e:
            raise KubeError(0, f"{method} {path}: {e!r}") from e
        return _check(method, path, response)


def _check(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    if response.is_success:
        return response.json() if response.content else {}
    try:
        message = str(response.json().get("message") or response.text)
    except ValueError:
        message = response.text
    message = f"{method} {path}: {message}"
    if response.status_code == 404:
        raise NotFound(404, message)
    if response.status_code == 409:
        raise Conflict(409, message)
    raise KubeError(response.status_code, message)

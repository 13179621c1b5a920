"""A small async client for the Kubernetes API: list and watch, nothing more.

The router only reads (ASRPools, EndpointSlices), so it talks to the API server
with httpx directly rather than carrying the full Kubernetes client in its
image. Credentials come from the pod's service account, or from a kubeconfig
(``KUBECONFIG`` or ``~/.kube/config``) when run outside the cluster; tokens
are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

log = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class KubeConfig:
    server: str
    token: str | None = None
    verify: ssl.SSLContext | bool = True
    namespace: str = "default"


def load_kube_config() -> KubeConfig:
    """In-cluster service account first, else the current context of a kubeconfig."""
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if host and port and (SERVICE_ACCOUNT / "token").exists():
        ctx = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
        namespace_file = SERVICE_ACCOUNT / "namespace"
        return KubeConfig(
            server=f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}",
            token=(SERVICE_ACCOUNT / "token").read_text().strip(),
            verify=ctx,
            namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
        )
    path = Path(os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))).expanduser()
    return parse_kubeconfig(yaml.safe_load(path.read_text()), base_dir=path.parent)


def parse_kubeconfig(doc: dict[str, Any], base_dir: Path) -> KubeConfig:
    def named(kind: str, name: str) -> dict[str, Any]:
        for entry in doc.get(kind) or []:
            if entry.get("name") == name:
                return dict(entry.get(kind[:-1]) or {})
        raise ValueError(f"kubeconfig has no {kind[:-1]} named {name!r}")

    context = named("contexts", doc["current-context"])
    cluster = named("clusters", context["cluster"])
    user = named("users", context["user"]) if context.get("user") else {}
    verify: ssl.SSLContext | bool = True
    if cluster.get("insecure-skip-tls-verify"):
        verify = False
    elif cluster.get("certificate-authority-data"):
        verify = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
    elif cluster.get("certificate-authority"):
        verify = ssl.create_default_context(cafile=str(base_dir / cluster["certificate-authority"]))
    token = user.get("token")
    if token is None and user.get("tokenFile"):
        token = (base_dir / user["tokenFile"]).read_text().strip()
    return KubeConfig(
        server=cluster["server"].rstrip("/"),
        token=token,
        verify=verify,
        namespace=context.get("namespace") or "default",
    )


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class KubeApi:
    def __init__(self, config: KubeConfig) -> None:
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.config = config
        self.client = httpx.AsyncClient(
            base_url=config.server,
            headers=headers,
            verify=config.verify,
            timeout=httpx.Timeout(30.0, read=None),
        )

    async def list(self, path: str) -> tuple[list[dict[str, Any]], str]:
        resp = await self.client.get(path)
        resp.raise_for_status()
        body = resp.json()
        return list(body.get("items") or []), str(body["metadata"]["resourceVersion"])

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "290",
        }
        async with self.client.stream("GET", path, params=params) as resp:
            if resp.status_code == 410:
                raise Gone
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    if (event.get("object") or {}).get("code") == 410:
                        raise Gone
                    raise httpx.HTTPError(f"watch error: {event.get('object')}")
                yield event

    async def close(self) -> None:
        await self.client.aclose()


# Called with ("SYNC", [objects]) after each list, then (ADDED|MODIFIED|DELETED, object).
Handler = Callable[[str, Any], None]


async def list_and_watch(api: KubeApi, path: str, on_event: Handler) -> None:
    """Forever: list (``on_event("SYNC", items)``), then watch (``on_event(type, obj)``).

    Relists after a 410, reconnects with backoff after any error; never returns.
    """
    delay = 0.5
    while True:
        try:
            items, version = await api.list(path)
            on_event("SYNC", items)
            delay = 0.5
            while True:  # a watch ends every timeoutSeconds; resume from the last version
                async for event in api.watch(path, version):
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        on_event(event["type"], obj)
        except asyncio.CancelledError:
            raise
        except Gone:
            log.info("watch of %s expired; listing again", path)
        except Exception as exc:
            log.warning("watch of %s failed (%s); retrying in %.1fs", path, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

"""The kopf side: which watch events reach the reconciler. Thin on purpose.

``build_registry(reconciler)`` returns a registry of event handlers, built in one place
(no module-level registry, so tests can build several). Every handler only names the pool the
event is about and calls ``Reconciler.reconcile``, which reads the world again and decides:

- an ASRPool's event: that pool (DELETED: forget it; the garbage collector removes the
  children through their owner references, so there is no finalizer to get stuck on);
- a worker Deployment's or pod's event (watched with the label selector
  ``app.kubernetes.io/managed-by=asrpool-operator``, set on the watch in ``main.py``):
  the pool in its ``asrpool.dev/pool`` label, so status follows pods within seconds.

Only event handlers, no change handlers: kopf then writes nothing of its own on the objects
(no last-handled-configuration annotation, no finalizer), which is what makes a restart
invisible. Handlers are sync: kopf runs them in its thread pool.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from .kube import KubeError, kopf_login
from .logic.labels import MANAGED_BY, POOL_LABEL
from .logic.spec import API_GROUP, PLURAL
from .reconcile import Reconciler

log = logging.getLogger(__name__)

VERSION = "v1alpha1"
_MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}


def build_registry(reconciler: Reconciler) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    # The same login as KubeClient.from_config: in-cluster, else the kubeconfig.
    kopf.on.login(registry=registry)(kopf_login)

    @kopf.on.event(API_GROUP, VERSION, PLURAL, registry=registry)
    def pool_event(type: str, name: str, namespace: str | None, **_: Any) -> None:
        if namespace is None:
            return  # ASRPools are namespaced; kopf types it for cluster-scoped kinds too
        if type == "DELETED":
            reconciler.forget(namespace, name)
        else:
            _reconcile(reconciler, namespace, name)

    @kopf.on.event("apps", "v1", "deployments", labels=_MANAGED, registry=registry)
    def deployment_event(labels: Mapping[str, str], namespace: str | None, **_: Any) -> None:
        _owner_changed(reconciler, labels, namespace)

    @kopf.on.event("v1", "pods", labels=_MANAGED, registry=registry)
    def pod_event(labels: Mapping[str, str], namespace: str | None, **_: Any) -> None:
        _owner_changed(reconciler, labels, namespace)

    return registry


def _owner_changed(
    reconciler: Reconciler, labels: Mapping[str, str], namespace: str | None
) -> None:
    pool = labels.get(POOL_LABEL)
    if pool and namespace:
        _reconcile(reconciler, namespace, pool)


def _reconcile(reconciler: Reconciler, namespace: str, name: str) -> None:
    """One line in the log for an API error, not a traceback: the next event or the resync
    (a few seconds away) tries again, so there is nothing for kopf to retry."""
    try:
        reconciler.reconcile(namespace, name)
    except KubeError as e:
        log.warning("%s/%s: %s", namespace, name, e)

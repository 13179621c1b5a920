"""The operator's settings, gathered once from flags (``asrpool operator``) and passed in.

Credentials are not a setting: in a pod, the service account; elsewhere the kubeconfig that
``KUBECONFIG`` names (or ``~/.kube/config``), for kopf's watches and our calls alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .load import RouterTarget
from .logic.spec import OperatorDefaults


@dataclass(frozen=True)
class OperatorSettings:
    namespace: str | None = None  # None: pools in every namespace (needs a ClusterRole)
    defaults: OperatorDefaults = field(default_factory=OperatorDefaults)
    router: RouterTarget | None = None  # where to read the load (autoscaling, status.queueDepth)
    resync_s: float = 15.0  # repair every pool this often
    autoscale_s: float = 2.0  # read the routers and autoscale this often
    liveness_port: int | None = 8080  # kopf's /healthz for the pod's liveness probe
    metrics_port: int | None = None  # Prometheus /metrics: what the autoscaler read and decided

"""HorizontalPodAutoscalers of a namespace → those aimed at a pool (pure).

An HPA, or KEDA (whose ScaledObject works through an HPA it creates, ``keda-hpa-NAME``),
scales an ASRPool through its scale subresource. If the pool's own ``spec.autoscaling`` is
on too, two controllers would fight over spec.replicas: the operator finds them here and
refuses (the Autoscaling condition says ExternalScaler, with a Warning Event) until the HPA
goes or ``spec.autoscaling.enabled`` is false.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .spec import API_GROUP, KIND


def scalers_of(hpas: Sequence[Mapping[str, Any]], pool: str) -> list[str]:
    """The names of the HPAs whose scaleTargetRef is the ASRPool ``pool``."""
    found = []
    for hpa in hpas:
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        group = str(ref.get("apiVersion") or "").split("/")[0]
        if ref.get("kind") == KIND and ref.get("name") == pool and group == API_GROUP:
            found.append(str((hpa.get("metadata") or {}).get("name") or ""))
    return sorted(found)

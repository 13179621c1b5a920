"""Desired manifest + the object the API server has → what to do about it (pure).

The reconciler asks ``plan_child`` for each child and only calls the API when the answer is
CREATE or UPDATE, so a pool that is as it should be costs three GETs and no writes: restarting
the operator, or a resync, changes nothing (no new resourceVersion, no rollout).

- CREATE: no such object.
- UPDATE: its ``asrpool.dev/spec-hash`` differs from the desired one (the pool or the operator
  changed), or its controller is an earlier pool of the same name (deleted and recreated before
  the garbage collector got to the child): take it over.
- KEEP: same hash, same owner.
- CONFLICT: an object of that name that no ASRPool controls (someone else's Deployment): never
  touched; the pool reports Degraded with reason NameConflict instead.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .labels import SPEC_HASH_ANNOTATION
from .spec import API_GROUP, KIND, PoolRef


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    KEEP = "keep"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Plan:
    action: Action
    why: str  # a sentence for the log and the pool's Events


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def plan_child(
    desired: Mapping[str, Any], actual: Mapping[str, Any] | None, owner: PoolRef
) -> Plan:
    kind, name = desired["kind"], desired["metadata"]["name"]
    if actual is None:
        return Plan(Action.CREATE, f"created {kind} {name}")
    controller = controller_of(actual)
    if controller is None or not _is_pool(controller, owner.name):
        return Plan(
            Action.CONFLICT,
            f"{kind} {name} already exists and no ASRPool controls it; rename the pool "
            f"or delete the {kind}",
        )
    if controller.get("uid") != owner.uid:
        return Plan(Action.UPDATE, f"took over {kind} {name} from an earlier pool of this name")
    want = desired["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    have = ((actual.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
    if have != want:
        return Plan(Action.UPDATE, f"updated {kind} {name} to the pool's spec")
    return Plan(Action.KEEP, f"{kind} {name} is up to date")


def _is_pool(ref: Mapping[str, Any], name: str) -> bool:
    group = str(ref.get("apiVersion", "")).split("/")[0]
    return group == API_GROUP and ref.get("kind") == KIND and ref.get("name") == name

"""Desired manifest + live object → create, update, keep, or leave someone else's alone."""

from __future__ import annotations

from typing import Any

import pytest

from asrpool_operator.logic.labels import SPEC_HASH_ANNOTATION
from asrpool_operator.logic.manifests import children
from asrpool_operator.logic.plan import Action, plan_child
from asrpool_operator.logic.spec import PoolRef, parse_pool

OWNER = PoolRef(name="large-v3", namespace="speech", uid="uid-now")
DESIRED = children(
    parse_pool({"metadata": {"name": "large-v3", "namespace": "speech", "uid": "uid-now"},
                "spec": {"model": "large-v3"}})
)[0]  # fmt: skip
HASH = DESIRED["metadata"]["annotations"][SPEC_HASH_ANNOTATION]


def live(
    *, hash_: str | None = HASH, owner: dict[str, Any] | None = None, extra: bool = False
) -> dict[str, Any]:
    owner = owner if owner is not None else {
        "apiVersion": "asrpool.dev/v1alpha1", "kind": "ASRPool", "name": "large-v3",
        "uid": "uid-now", "controller": True,
    }  # fmt: skip
    annotations = {SPEC_HASH_ANNOTATION: hash_} if hash_ else {}
    if extra:  # what the API server and other tools add never matters
        annotations["deployment.kubernetes.io/revision"] = "4"
    return {
        "metadata": {"name": "large-v3-worker", "annotations": annotations,
                     "ownerReferences": [owner] if owner else [], "resourceVersion": "812"},
        "spec": {"replicas": 99},
        "status": {"readyReplicas": 1},
    }  # fmt: skip


CASES = [
    ("missing", None, Action.CREATE),
    ("same hash, same owner", live(), Action.KEEP),
    ("same hash, server-added fields", live(extra=True), Action.KEEP),
    ("other hash", live(hash_="0123456789abcdef"), Action.UPDATE),
    ("no hash (applied by an older operator)", live(hash_=None), Action.UPDATE),
    ("owned by an earlier pool of this name",
     live(owner={"apiVersion": "asrpool.dev/v1alpha1", "kind": "ASRPool", "name": "large-v3",
                 "uid": "uid-before", "controller": True}), Action.UPDATE),
    ("no owner", live(owner={}), Action.CONFLICT),
    ("controlled by a Helm-made Deployment's owner",
     live(owner={"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "u",
                 "controller": True}), Action.CONFLICT),
    ("controlled by another pool",
     live(owner={"apiVersion": "asrpool.dev/v1alpha1", "kind": "ASRPool", "name": "other",
                 "uid": "u", "controller": True}), Action.CONFLICT),
    ("our pool but not as controller",
     live(owner={"apiVersion": "asrpool.dev/v1alpha1", "kind": "ASRPool", "name": "large-v3",
                 "uid": "uid-now"}), Action.CONFLICT),
]  # fmt: skip


@pytest.mark.parametrize(("actual", "action"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(actual: dict[str, Any] | None, action: Action) -> None:
    assert plan_child(DESIRED, actual, OWNER).action is action


def test_a_conflict_says_how_to_fix_it() -> None:
    plan = plan_child(DESIRED, live(owner={}), OWNER)
    assert "Deployment large-v3-worker already exists" in plan.why
    assert "rename the pool or delete the Deployment" in plan.why

"""The operator's decisions, as pure functions over plain data (no kopf, no kubernetes, no I/O).

- ``spec``: an ASRPool object → a validated, defaulted ``Pool`` (or every problem at once).
- ``labels``: names and labels of what the operator creates.
- ``manifests``: ``Pool`` → Deployment, Service, PodDisruptionBudget, hash-stamped.
- ``plan``: desired manifest + live object → create, update, keep, or leave alone.
- ``status``: Deployment + pods (+ load) → status, conditions, Events.
- ``autoscale``: load + history → replicas.
- ``router_metrics``: the routers' /metrics text → each pool's load.

The shells (``reconcile``, ``kube``, ``load``, ``handlers``) gather the inputs and carry out
the answers; the tables in ``tests/unit/test_operator_*.py`` pin every decision.
"""

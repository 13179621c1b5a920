"""The operator's decisions, as pure functions over plain data (no kopf, no kubernetes, no I/O).

- ``spec``: an ASRPool object → a validated, defaulted ``Pool`` (or every problem at once).
- ``labels``: names and labels of what the operator creates.
- ``manifests``: ``Pool`` → Deployment, Service, PodDisruptionBudget, hash-stamped.
- ``plan``: desired manifest + live object → create, update, keep, or leave alone.
- ``status``: Deployment + pods (+ load) → status, conditions, Events.
- ``autoscale``: windowed load + the pods + memory → replicas, and why.
- ``router_metrics``: one router's /metrics text → what it says for each pool.
- ``load_window``: every router's samples over time → a pool's load over a window.
- ``capacity``: a pool's pods → ready, starting, waiting for GPUs.
- ``deletion_cost``: before a scale-down, the idlest pods made cheapest to delete.
- ``external_scaler``: the HPAs (KEDA's too) aimed at a pool.
- ``autoscale_report``: the autoscaler's situation → the Autoscaling condition.

The shells (``reconcile``, ``autoscaler``, ``kube``, ``load``, ``handlers``) gather the
inputs and carry out
the answers; the tables in ``tests/unit/test_operator_*.py`` pin every decision.
"""

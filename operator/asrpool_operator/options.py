"""The operator's command-line flags, for ``asrpool operator`` and ``python -m asrpool_operator``.

``add_operator_options(parser)`` declares them (each also read from an ``ASRPOOL_*``
variable, as every asrpool flag is); ``run_from_args(args)`` hands them to ``main.run``.
Importing this module imports neither kopf nor kubernetes.
"""

from __future__ import annotations

import argparse

from asrpool_contract.envflags import env_float, env_int, env_str

from .logic.spec import OperatorDefaults


def add_operator_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("operator")
    g.add_argument(
        "--namespace",
        default=env_str("ASRPOOL_NAMESPACE"),
        help="manage the ASRPools of this namespace only (default: every namespace)",
    )
    g.add_argument(
        "--worker-image",
        default=env_str("ASRPOOL_WORKER_IMAGE", OperatorDefaults.worker_image),
        help="image of pools without spec.image (default: %(default)s)",
    )
    g.add_argument(
        "--worker-token-secret",
        default=env_str("ASRPOOL_WORKER_TOKEN_SECRET"),
        help="Secret (in each pool's namespace) whose 'token' key our worker pods mount and "
        "require on /v1: the token the routers send (default: none, workers take any caller)",
    )
    g.add_argument(
        "--router-selector",
        default=env_str("ASRPOOL_ROUTER_SELECTOR"),
        help="label selector (key=value[,key=value]) of the router pods whose /metrics give "
        "the pools' load (autoscaling, status.queueDepth)",
    )
    g.add_argument(
        "--router-namespace",
        default=env_str("ASRPOOL_ROUTER_NAMESPACE"),
        help="namespace of those routers (default: --namespace)",
    )
    g.add_argument(
        "--router-metrics-port",
        type=int,
        default=env_int("ASRPOOL_ROUTER_METRICS_PORT", 8000),
        help="the routers' HTTP port (default: 8000)",
    )
    g.add_argument(
        "--resync-interval",
        type=float,
        default=env_float("ASRPOOL_RESYNC_INTERVAL", 15.0),
        help="seconds between full re-checks of every pool (default: 15)",
    )
    g.add_argument(
        "--autoscale-interval",
        type=float,
        default=env_float("ASRPOOL_AUTOSCALE_INTERVAL", 2.0),
        help="seconds between readings of the routers' load and autoscaling decisions; "
        "shorter than the pools' panicWindowSeconds (default: 2)",
    )
    g.add_argument(
        "--liveness-port",
        type=int,
        default=env_int("ASRPOOL_LIVENESS_PORT", 8080),
        help="port of /healthz for the pod's liveness probe; 0 for none (default: 8080)",
    )
    g.add_argument(
        "--metrics-port",
        type=int,
        default=env_int("ASRPOOL_METRICS_PORT", 0),
        help="port of the operator's Prometheus /metrics (what the autoscaler read, decided "
        "and why, per pool); 0 for none (default: 0)",
    )


def run_from_args(args: argparse.Namespace) -> int:
    from .main import run

    run(
        args.namespace,
        worker_image=args.worker_image,
        worker_token_secret=args.worker_token_secret,
        router_selector=args.router_selector,
        router_namespace=args.router_namespace,
        router_metrics_port=args.router_metrics_port,
        resync_seconds=args.resync_interval,
        autoscale_seconds=args.autoscale_interval,
        liveness_port=args.liveness_port or None,
        metrics_port=args.metrics_port or None,
    )
    return 0

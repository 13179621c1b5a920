"""Benchmark: the operator's autoscaling rule against a plain HPA-style rule, on one load trace.

The same trace (a ramp, a spike, a plateau, then idle) replays through the simulated pool of
``tests/support/autoscale_sim.py`` twice per scenario: once with the operator's rule
(``asrpool_operator.logic.autoscale.decide``, every 2 s, on the routers' counters over its
windows) and once with the HPA's algorithm on the same load (``ceil(current × metric /
target)`` every 15 s on an instantaneous sample, ±10 % tolerance, up by at most max(4, 100 %)
a period, down after 300 s). Scenarios vary what hurts an autoscaler: how long a new pod
takes to serve (a small model, a large one), whether arrivals and service times are noisy
(Poisson, exponential), and a cluster short of GPUs.

Printed per scenario and rule: pod-seconds (pods holding a GPU), p99 of the time a request
waited for a slot, scale events, the most pods at once. Everything is simulated time: a run
takes seconds. Not part of `make test` (tests/unit/test_operator_autoscale_simulation.py
asserts the rule's properties; this only measures).

Run: .venv/bin/python bench/autoscale_trace.py [--seeds 3] [--zero-delay 900]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asrpool_operator.logic.spec import Autoscaling
from bench.results import Results
from tests.support.autoscale_sim import HpaRule, OperatorRule, Phase, Result, simulate

PER_POD = 2
RAMP = [Phase(60, 0.25 * i) for i in range(1, 9)]  # 0.25 → 2 requests a second
TRACE = [*RAMP, Phase(300, 2), Phase(20, 6), Phase(300, 2), Phase(1500, 0)]
SCENARIOS = [
    # (name, simulate() keywords)
    ("small model (30 s to serve)", {"load_time_s": 30}),
    ("large model (300 s to serve)", {"load_time_s": 300}),
    ("large model, 6 GPUs in the cluster", {"load_time_s": 300, "gpus": 6}),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="noisy runs per scenario (default 3)")
    p.add_argument(
        "--zero-delay", type=int, default=900,
        help="the operator's scaleToZeroDelaySeconds (default 900; the HPA has none: 300)",
    )  # fmt: skip
    p.add_argument("--target", type=float, default=1.5, help="in flight a pod (default 1.5)")
    p.add_argument("--json", type=Path, help="also write the numbers here (bench/results.py)")
    args = p.parse_args()
    results = Results("autoscale", {k: v for k, v in vars(args).items() if k != "json"})
    results.notes.append("SIMULATED pool (tests/support/autoscale_sim.py): simulated time.")
    policy = Autoscaling(
        min_replicas=0, max_replicas=16, target_in_flight_per_pod=args.target,
        scale_to_zero_delay_s=args.zero_delay,
    )  # fmt: skip
    print(f"trace: {' → '.join(f'{ph.rate:g}/s for {ph.seconds:g}s' for ph in TRACE)}")
    print(f"pool: perPod {PER_POD}, 4 s a request, target {args.target:g} in flight a pod, "
          f"max 16, min 0\n")  # fmt: skip
    header = f"{'scenario':<38}{'arrivals':<10}{'rule':<11}{'pod-s':>8}{'p99 wait':>10}"
    print(header + f"{'events':>8}{'max pods':>10}")
    for name, kw in SCENARIOS:
        for noisy in (False, True):
            seeds = list(range(1, args.seeds + 1)) if noisy else [None]
            for rule in (OperatorRule, HpaRule):
                runs = [
                    simulate(TRACE, rule(policy, PER_POD), replicas=1, seed=s, **kw) for s in seeds
                ]
                print(_row(name, "Poisson" if noisy else "fluid", runs))
                mean = statistics.fmean
                results.add(
                    runs[0].rule,
                    {"scenario": name, "arrivals": "Poisson" if noisy else "fluid"},
                    {"pod_seconds": mean(r.pod_seconds for r in runs),
                     "p99_wait_s": mean(r.p99_wait() for r in runs),
                     "scale_events": mean(r.scale_events for r in runs),
                     "max_pods": mean(r.max_replicas() for r in runs)},
                )  # fmt: skip
        print()
    results.write(args.json)
    return 0


def _row(scenario: str, arrivals: str, runs: list[Result]) -> str:
    mean = statistics.fmean
    return (
        f"{scenario:<38}{arrivals:<10}{runs[0].rule:<11}"
        f"{mean(r.pod_seconds for r in runs):>8.0f}"
        f"{mean(r.p99_wait() for r in runs):>9.1f}s"
        f"{mean(r.scale_events for r in runs):>8.1f}"
        f"{mean(r.max_replicas() for r in runs):>10.1f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""Pod-like hosts for tests: a network namespace each, with its own address, reached from here.

Kubernetes refuses loopback addresses in EndpointSlices, so tests that publish real
workers as endpoints run each worker in a network namespace the test creates: a veth
pair gives it a private /30 (host side here, pod side there), much as a CNI gives a pod
its IP. Needs root and iproute2 (``make test`` installs it); cleaned up on exit.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class PodHost:
    netns: str
    ip: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def pod_host() -> Iterator[PodHost]:
    tag = secrets.token_hex(3)
    netns, host_if, pod_if = f"asrpool-{tag}", f"ah{tag}", f"ap{tag}"
    # A random /30 in 10.213.0.0/16, so concurrent test sessions do not collide.
    base = 4 * secrets.randbelow(16384)
    prefix = f"10.213.{base >> 8}."
    host_ip, pod_ip = f"{prefix}{(base & 255) + 1}", f"{prefix}{(base & 255) + 2}"
    _ip("netns", "add", netns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", pod_if)
        _ip("link", "set", pod_if, "netns", netns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", netns, "addr", "add", f"{pod_ip}/30", "dev", pod_if)
        _ip("-n", netns, "link", "set", pod_if, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        yield PodHost(netns, pod_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)

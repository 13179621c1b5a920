"""Fixtures for tests against a real Kubernetes API server (tests/k8s).

``control_plane`` (session) builds the tools with ``scripts/build-k8s-tools.sh`` (once per
machine: a cold build takes about 15 minutes, later sessions find them cached), then starts
etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1. When the tools
cannot be built or the cluster cannot start, every test here fails with the log's tail: these
tests never skip. ``namespace`` gives each test its own namespace.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-k8s-tools.sh"
# A cold build took 14 minutes on two cores; the bound only stops a build that hangs.
BUILD_TIMEOUT_S = 2 * 60 * 60
HERE = Path(__file__).resolve().parent


def pinned_version(tool: str) -> str:
    """The version the build script pins for ``tool`` (K8S, ETCD, HELM, KWOK), or its override
    from the environment, as the script itself reads it."""
    override = os.environ.get(f"ASRPOOL_{tool}_VERSION")
    if override:
        return override
    match = re.search(
        rf"^{tool}_VERSION=\$\{{ASRPOOL_{tool}_VERSION:-([^}}]+)\}}",
        BUILD_SCRIPT.read_text(),
        re.MULTILINE,
    )
    if match is None:
        raise LookupError(f"{BUILD_SCRIPT.name} pins no {tool}_VERSION")
    return match.group(1)


def _tools_built() -> bool:
    return (
        subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], capture_output=True).returncode == 0
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """When the tools must be built first, lift the per-test timeout of the tests here: the
    session fixture builds them inside whichever test asks first."""
    ours = [item for item in items if HERE in item.path.resolve().parents]
    if not ours or _tools_built():
        return
    for item in ours:
        item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S + 600))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            "tests/k8s: building kube-apiserver, etcd, kubectl, helm first "
            "(scripts/build-k8s-tools.sh; once per machine, ~15 minutes)",
            yellow=True,
        )


@pytest.fixture(scope="session")
def k8s_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the built tools; builds them if missing, fails loudly if it can't."""
    log_path = tmp_path_factory.getbasetemp() / "build-k8s-tools.log"
    with open(log_path, "wb") as log:
        # Its own process group, so a timeout also stops the `go build` it runs.
        proc = subprocess.Popen(
            ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=log, start_new_session=True
        )
        try:
            out, _ = proc.communicate(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            out = b""
    if proc.returncode != 0 or not out.strip():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(
            f"{BUILD_SCRIPT.relative_to(REPO)} failed (exit {proc.returncode}); "
            f"the end of {log_path}:\n{tail}",
            pytrace=False,
        )
    return Path(out.decode().strip().splitlines()[-1])


@pytest.fixture(scope="session")
def control_plane(
    k8s_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler, for the whole session."""
    cp = ControlPlane(k8s_bin, tmp_path_factory.mktemp("control-plane"))
    try:
        cp.start()
        cp.start_controllers()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        # TimeoutError is an OSError. Name the workdir: every process's full log is there.
        cp.stop()
        pytest.fail(f"the control plane did not start ({cp.workdir}): {e}", pytrace=False)
    yield cp
    cp.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting for it to go)."""
    name = f"t-{secrets.token_hex(4)}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)

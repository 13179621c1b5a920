"""A real Kubernetes control plane on 127.0.0.1 for tests, like controller-runtime's envtest.

``ControlPlane(bin_dir, workdir).start()`` runs etcd and kube-apiserver as child processes
from the binaries that ``scripts/build-k8s-tools.sh`` builds; ``start_controllers()`` adds
kube-controller-manager (garbage collection, ReplicaSets, service accounts, …) and
kube-scheduler. There are no nodes: pods get scheduled only once a test adds a (fake) node.

Everything lives in ``workdir``: generated certificates and keys, a token file with one admin
token (group ``system:masters``), the kubeconfig, each process's log (read it on failure) and
etcd's data, which ``stop()`` removes. Ports are free ones on 127.0.0.1, so several sessions
can run side by side. Used by ``tests/k8s/conftest.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# The first address of the range: the `kubernetes` Service, so the serving cert names it too.
KUBERNETES_SERVICE_IP = "10.0.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "asrpool-admin"


class KubectlError(subprocess.CalledProcessError):
    """kubectl (or helm) exited non-zero; the message carries its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr:\n{self.stderr}"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports on 127.0.0.1 (held together while picked, so none repeats)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def _die_with_parent() -> None:
    """In the child before exec: if the test process dies (even SIGKILL), the daemon dies too,
    instead of holding ports and CPU on a two-core CI machine."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Daemon:
    """One control-plane process whose output goes to ``<workdir>/<name>.log``."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            self._log.close()
            raise

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_ok(
        self,
        url: str,
        timeout: float,
        verify: ssl.SSLContext | bool = False,
        token: str | None = None,
    ) -> None:
        """Poll ``url`` until it answers 200; fail early if the process exits."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                r = httpx.get(url, verify=verify, headers=headers, timeout=5)
                if r.status_code == 200:
                    return
                last = f"{r.status_code}: {r.text[-500:]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.25)
        raise TimeoutError(
            f"{self.name}: {url} not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}"
        )

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class ControlPlane:
    """etcd + kube-apiserver (+ controller-manager and scheduler) from ``bin_dir``."""

    def __init__(self, bin_dir: Path, workdir: Path, startup_timeout: float = 120.0):
        self.bin = bin_dir
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(24)
        self.kubeconfig = workdir / "kubeconfig"
        self.ca_cert = workdir / "pki" / "ca.crt"
        self.etcd_port, self.etcd_peer_port, self.port = free_ports(3)
        self.url = f"https://127.0.0.1:{self.port}"
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self._daemons: list[Daemon] = []

    # --- lifecycle

    def start(self) -> None:
        """Start etcd and kube-apiserver; return once the apiserver's /readyz answers 200."""
        try:
            self._write_credentials()
            self._start_etcd()
            self._start_apiserver()
            self.write_kubeconfig(self.kubeconfig, {"token": self.token})
        except BaseException:
            self.stop()
            raise

    def start_controllers(self) -> None:
        """Add kube-controller-manager (all controllers) and kube-scheduler; idempotent."""
        if any(d.name == "kube-controller-manager" for d in self._daemons):
            return
        kcm_port, scheduler_port = free_ports(2)
        kubeconfig = str(self.kubeconfig)
        delegated = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            # Authenticate callers by token review only: the apiserver has no front-proxy CA
            # to look up, and the failed lookups fill the log with errors.
            "--authentication-skip-lookup=true",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
        try:
            pki = self.workdir / "pki"
            kcm = self._spawn(
                "kube-controller-manager",
                *delegated,
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                "--controllers=*",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={self.ca_cert}",
                f"--cluster-signing-cert-file={self.ca_cert}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            )
            scheduler = self._spawn(
                "kube-scheduler",
                *delegated,
                f"--secure-port={scheduler_port}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
            )
            # The controller-manager serves /healthz only (no /readyz); the scheduler both.
            kcm.wait_ok(
                f"https://127.0.0.1:{kcm_port}/healthz", self.startup_timeout, token=self.token
            )
            scheduler.wait_ok(
                f"https://127.0.0.1:{scheduler_port}/readyz", self.startup_timeout, token=self.token
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process (newest first) and remove etcd's data; logs stay in workdir."""
        while self._daemons:
            self._daemons.pop().stop()
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- clients

    def tls(self) -> ssl.SSLContext:
        """Verifies the apiserver against the generated CA."""
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def client(self) -> httpx.Client:
        """An httpx client for raw API calls as the admin user; close it (``with``)."""
        return httpx.Client(
            base_url=self.url,
            verify=self.tls(),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl *args`` here; raises KubectlError unless ``check=False``."""
        return self._run("kubectl", args, check=check, input=input, timeout=timeout)

    def helm(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``helm *args`` against this cluster, with helm's cache and config in workdir."""
        return self._run("helm", args, check=check, input=input, timeout=timeout)

    def logs(self) -> dict[str, str]:
        """The tail of each running process's log (for assertion messages)."""
        return {d.name: d.log_tail() for d in self._daemons}

    # --- internals

    def _run(
        self,
        tool: str,
        args: Sequence[str],
        *,
        check: bool,
        input: str | None,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        helm_home = self.workdir / "helm"
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }
        argv = [str(self.bin / tool), *args]
        result = subprocess.run(
            argv, env=env, input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def _spawn(self, name: str, *args: str) -> Daemon:
        daemon = Daemon(name, [str(self.bin / name), *args], self.workdir / f"{name}.log")
        self._daemons.append(daemon)
        return daemon

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.workdir)

    def _write_credentials(self) -> None:
        """A CA, the apiserver's serving cert signed by it, the service-account key pair and
        the token file. Generated per run: nothing secret is checked in or reused."""
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._openssl(
            "req", "-x509", *ec, "-days", "7", "-subj", "/CN=asrpool-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-keyout", str(pki / "ca.key"), "-out", str(self.ca_cert),
        )  # fmt: skip
        self._openssl(
            "req", *ec, "-subj", "/CN=kube-apiserver",
            "-keyout", str(pki / "apiserver.key"), "-out", str(pki / "apiserver.csr"),
        )  # fmt: skip
        sans = ",".join(
            [
                "IP:127.0.0.1",
                f"IP:{KUBERNETES_SERVICE_IP}",
                "DNS:localhost",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
            ]
        )
        (pki / "apiserver.ext").write_text(
            f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
        )
        self._openssl(
            "x509", "-req", "-in", str(pki / "apiserver.csr"), "-days", "7",
            "-CA", str(self.ca_cert), "-CAkey", str(pki / "ca.key"), "-CAcreateserial",
            "-extfile", str(pki / "apiserver.ext"), "-out", str(pki / "apiserver.crt"),
        )  # fmt: skip
        # RSA: what every service-account token consumer accepts.
        self._openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(pki / "sa.key"),
        )  # fmt: skip
        self._openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
        tokens = pki / "tokens.csv"
        tokens.write_text(f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        for secret in (pki / "ca.key", pki / "apiserver.key", pki / "sa.key", tokens):
            secret.chmod(0o600)

    def _start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        etcd = self._spawn(
            "etcd",
            "--name=asrpool-test",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=asrpool-test={peer}",
            "--initial-cluster-state=new",
            # Throwaway data: skipping fsync makes every write fast on a CI disk (envtest too).
            "--unsafe-no-fsync",
            "--log-level=warn",
        )
        etcd.wait_ok(f"{self.etcd_url}/readyz", self.startup_timeout)

    def _start_apiserver(self) -> None:
        pki = self.workdir / "pki"
        apiserver = self._spawn(
            "kube-apiserver",
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # This apiserver refuses a loopback address as the `kubernetes` Service's endpoint;
            # nothing runs in pods here, so the Service needs none.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_cert}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
        )
        apiserver.wait_ok(f"{self.url}/readyz", self.startup_timeout, verify=self.tls())

    def write_kubeconfig(self, path: Path, user: dict[str, Any]) -> Path:
        """A kubeconfig at ``path`` for this cluster (verified against the CA) that logs in as
        ``user`` (a kubeconfig user stanza: a token, a client certificate, an exec plugin).
        JSON is valid YAML: no YAML library needed."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "asrpool-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self.ca_cert),
                    },
                }
            ],
            "users": [{"name": "asrpool-test", "user": user}],
            "contexts": [
                {
                    "name": "asrpool-test",
                    "context": {"cluster": "asrpool-test", "user": "asrpool-test"},
                }
            ],
            "current-context": "asrpool-test",
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)
        return path

    def client_certificate(self, directory: Path, user: str, group: str) -> tuple[Path, Path]:
        """A client certificate (and its key) for ``user`` in ``group``, signed by the CA the
        apiserver trusts for clients (``--client-ca-file``); written into ``directory``."""
        cert, key, csr, ext = (directory / f"{user}.{e}" for e in ("crt", "key", "csr", "ext"))
        ext.write_text("extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n")
        self._openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", f"/O={group}/CN={user}", "-keyout", str(key), "-out", str(csr),
        )  # fmt: skip
        self._openssl(
            "x509", "-req", "-in", str(csr), "-days", "1", "-CA", str(self.ca_cert),
            "-CAkey", str(self.workdir / "pki" / "ca.key"), "-CAcreateserial",
            "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip
        return cert, key

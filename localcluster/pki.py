"""The cluster's certificates and keys, made with openssl when the cluster is created.

One CA signs: the API server's serving certificate (the node's address and the ``kubernetes``
Service's, so pods verify it too), the kubelet's serving certificate, and the client certificate
the API server shows the kubelet (logs, exec, port-forward). Plus the service-account key pair.
Generated per cluster and kept in its directory only: nothing secret is checked in or reused.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .layout import CLUSTER_DOMAIN, KUBERNETES_SERVICE_IP, Layout

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
DAYS = "30"


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd)


def _issue(pki: Path, name: str, subject: str, extensions: str) -> None:
    """``name``.crt and ``name``.key, signed by the CA in ``pki``."""
    _openssl(
        pki, "req", *_EC, "-subj", subject,
        "-keyout", f"{name}.key", "-out", f"{name}.csr",
    )  # fmt: skip
    (pki / f"{name}.ext").write_text(extensions)
    _openssl(
        pki, "x509", "-req", "-in", f"{name}.csr", "-days", DAYS,
        "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-extfile", f"{name}.ext", "-out", f"{name}.crt",
    )  # fmt: skip
    (pki / f"{name}.key").chmod(0o600)


def apiserver_sans(layout: Layout) -> list[str]:
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    names.append(f"kubernetes.default.svc.{CLUSTER_DOMAIN}")
    return [
        f"IP:{layout.node_ip}",
        f"IP:{KUBERNETES_SERVICE_IP}",
        "IP:127.0.0.1",
        "DNS:localhost",
        *(f"DNS:{n}" for n in names),
    ]


def create(layout: Layout) -> None:
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        pki, "req", "-x509", *_EC, "-days", DAYS, "-subj", f"/CN=asrpool-{layout.name}-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-keyout", "ca.key", "-out", "ca.crt",
    )  # fmt: skip
    (pki / "ca.key").chmod(0o600)
    server_usage = (
        "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _issue(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName={','.join(apiserver_sans(layout))}\n{server_usage}",
    )
    _issue(
        pki,
        "kubelet",
        f"/CN={layout.node_name}",
        f"subjectAltName=IP:{layout.node_ip},DNS:{layout.node_name}\n{server_usage}",
    )
    _issue(
        pki,
        "apiserver-kubelet-client",
        "/O=system:masters/CN=kube-apiserver-kubelet-client",
        "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    # RSA: what every service-account token consumer accepts.
    rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    _openssl(pki, "genpkey", *rsa, "-out", "sa.key")
    _openssl(pki, "pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    (pki / "sa.key").chmod(0o600)

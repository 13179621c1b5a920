"""The cluster's add-on: CoreDNS, so pods find Services by name (``helm test`` does) (pure).

``coredns(image)`` returns the manifests ``cluster.py`` applies once the node is Ready: the
usual ``kube-dns`` Service at ``DNS_SERVICE_IP`` (the kubelet's clusterDNS), a Deployment of one
unprivileged pod, and the read-only RBAC the kubernetes plugin needs. It answers for
``cluster.local`` and reverse zones only: no pod traffic leaves this machine, so there is no
upstream to forward other names to.
"""

from __future__ import annotations

from typing import Any

from .layout import CLUSTER_DOMAIN, DNS_SERVICE_IP

NAMESPACE = "kube-system"
NAME = "coredns"
PORT = 1053  # unprivileged: the image drops every capability and runs as a user
LABELS = {"k8s-app": "kube-dns"}

COREFILE = f""".:{PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""


def coredns(image: str) -> list[dict[str, Any]]:
    meta = {"name": NAME, "namespace": NAMESPACE, "labels": LABELS}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "asrpool:coredns", "labels": LABELS},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces", "pods", "endpoints"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "asrpool:coredns", "labels": LABELS},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "asrpool:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"Corefile": COREFILE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": LABELS},
                "template": {
                    "metadata": {"labels": LABELS},
                    "spec": _pod_spec(image),
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": NAMESPACE, "labels": LABELS},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": LABELS,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": PORT, "protocol": "TCP"},
                ],
            },
        },
    ]


def _pod_spec(image: str) -> dict[str, Any]:
    return {
        "serviceAccountName": NAME,
        # Its own name server is itself; the node's resolv.conf has no upstream anyway.
        "dnsPolicy": "Default",
        "priorityClassName": "system-cluster-critical",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "coredns",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": ["-conf", "/etc/coredns/Corefile"],
                "ports": [
                    {"name": "dns", "containerPort": PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": PORT, "protocol": "TCP"},
                ],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                "resources": {
                    "requests": {"cpu": "10m", "memory": "32Mi"},
                    "limits": {"memory": "128Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": NAME}}],
    }

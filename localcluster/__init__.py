"""A real one-node Kubernetes cluster on this machine, for ``make cluster-up`` and tests/cluster.

Everything a node needs runs here as plain processes, nothing pulled from a registry: etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy (built from the Go
module proxy by ``scripts/build-k8s-tools.sh``), Debian's containerd and runc with the bridge CNI,
CoreDNS, and our images (``scripts/build-images.sh``) imported into containerd.

The node lives in namespaces of its own, so it changes nothing on the host and several clusters
(a user's and a test session's, say) run side by side:

- a network namespace ``asrpool-node-NAME``: the control plane, the kubelet's ports, kube-proxy's
  iptables rules, the pods' bridge and every pod's veth are there; one veth links it to the host
  (host ``10.218.N.1``, node ``10.218.N.2``) and the host routes the pods' ``10.219.N.0/24`` to it;
- a mount namespace: containerd's and the kubelet's mounts, and the host paths they insist on
  (``/run/containerd``, ``/var/lib/cni``, ``/var/log/containers``) bound to the cluster's own
  directory;
- a cgroup root ``/asrpool-NAME`` under which the kubelet puts every pod.

Modules: ``layout`` (names, addresses and paths of one cluster; pure), ``configs`` (every config
file, as text; pure), ``addons`` (CoreDNS manifests; pure), ``pki`` (openssl), ``host`` (the
namespaces, veth, route and cgroups), ``daemons`` (detached processes with pid files),
``cluster`` (up, down, status), ``__main__`` (the command line).
"""

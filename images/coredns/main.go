// CoreDNS for the local cluster (scripts/cluster.sh): cluster.local names from the API
// server, nothing else. Only the plugins the Corefile of localcluster/addons.py uses are linked
// in; scripts/build-k8s-tools.sh --coredns builds this file against the pinned CoreDNS release.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }

// Command coredns is the cluster DNS of the single-node cluster of the cluster
// suite (hack/cluster): CoreDNS built from the Go module proxy with only the
// plugins its Corefile uses. It runs as a process inside the cluster's network
// namespace, on the node address the kubelet gives pods as their resolver.
//
// The `cache` plugin is left out on purpose: it keeps the negative answer for
// a StatefulSet pod's name looked up before the pod was ready, and the
// gateways resolve worker names exactly then.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}

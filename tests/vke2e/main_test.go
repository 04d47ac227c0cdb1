// Package vke2e runs virtual-kubelet's importable end-to-end suite against a vnode virtual node.
//
// Build it with `go test -c` (vnode/cluster/build.py caches the binary by version) and run it with
// -kubeconfig, -namespace and -node-name; the stats and metrics tests reach the virtual kubelet
// through a pod named like the node in that namespace, as the suite's framework expects.
package vke2e

import (
	"flag"
	"testing"
	"time"

	vke2e "github.com/virtual-kubelet/virtual-kubelet/test/e2e"
)

var (
	kubeconfig   = flag.String("kubeconfig", "", "path to the kubeconfig of the cluster under test")
	namespace    = flag.String("namespace", "kube-system", "the namespace the suite creates its pods in")
	nodeName     = flag.String("node-name", "virtual-node-eci-0", "the virtual node under test")
	watchTimeout = flag.Duration("watch-timeout", 3*time.Minute, "how long the suite waits for each condition")
)

// TestEndToEnd runs all of virtual-kubelet's end-to-end tests; none is skipped.
func TestEndToEnd(t *testing.T) {
	config := vke2e.EndToEndTestSuiteConfig{
		Kubeconfig:   *kubeconfig,
		Namespace:    *namespace,
		NodeName:     *nodeName,
		WatchTimeout: *watchTimeout,
	}
	vke2e.NewEndToEndTestSuite(config).Run(t)
}

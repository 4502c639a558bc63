// Command etcd is the etcd server of the release pinned in this module's
// go.mod, built from the Go module proxy so that envtest needs no binary
// downloads.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

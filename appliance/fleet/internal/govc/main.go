// Command govc is govmomi's govc command line built from the govmomi
// version pinned in go.mod, with the command groups the fleet benchmark
// compares against (vm.*, datastore.*, folder.*). The benchmark builds it
// once: github.com/vmware/govmomi/govc is a separate module with a local
// replace directive, so `go run …/govc@VERSION` cannot build it.
package main

import (
	"os"

	"github.com/vmware/govmomi/cli"
	_ "github.com/vmware/govmomi/cli/datastore"
	_ "github.com/vmware/govmomi/cli/folder"
	_ "github.com/vmware/govmomi/cli/vm"
)

func main() { os.Exit(cli.Run(os.Args[1:])) }

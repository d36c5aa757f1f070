// Command swarmboot is the boot-serving appliance for Docker Swarm on
// vSphere: it builds images, serves network boots, manages the fleet in
// vCenter and enrolls the agents. Run "swarmboot --help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/swarmboot/swarmboot/cmd/swarmboot/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

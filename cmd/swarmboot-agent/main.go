// Command swarmboot-agent runs inside every swarmboot image: it enrolls
// with the appliance, joins the swarm and reports its disk.
package main

import (
	"fmt"
	"os"

	"github.com/swarmboot/swarmboot/pkg/version"
)

func main() {
	fmt.Fprintf(os.Stdout, "swarmboot-agent %s\n", version.Version)
}

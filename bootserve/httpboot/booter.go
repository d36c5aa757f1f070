package httpboot

import (
	"context"
	"errors"
	"net"
)

// ErrUnknown is returned by a Booter for a machine it does not know.
var ErrUnknown = errors.New("unknown machine")

// Machine is what the server knows about a machine when it asks a Booter.
type Machine struct {
	MAC  net.HardwareAddr
	IP   net.IP // the address the request came from (may be nil)
	Arch string // firmware architecture when known ("bios", "efi-x64"; may be "")
}

// Boot is what one machine boots.
type Boot struct {
	// Name labels the boot in logs and events (e.g. the image name).
	Name string
	// Kernel and Initrd are artifact names under the artifacts directory
	// (served at /artifacts/NAME) or absolute http(s) URLs.
	Kernel string
	Initrd []string
	// Cmdline is the image's kernel command line; Args are the machine's
	// own additions, appended after it.
	Cmdline string
	Args    string
}

// Booter answers "what does this machine boot?". It returns ErrUnknown
// (possibly wrapped) for machines it does not know. Implementations must be
// safe for concurrent use.
type Booter interface {
	Boot(ctx context.Context, m Machine) (*Boot, error)
}

// BooterFunc adapts a function to a Booter.
type BooterFunc func(ctx context.Context, m Machine) (*Boot, error)

// Boot calls f.
func (f BooterFunc) Boot(ctx context.Context, m Machine) (*Boot, error) { return f(ctx, m) }

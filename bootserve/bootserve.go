// Package bootserve serves network boots: DHCP (proxy or full), TFTP for
// boot loaders and HTTP for iPXE scripts and boot artifacts. It is usable
// on its own; what a machine boots is asked of a small interface (Booter)
// that the caller implements. DirBooter serves the output directory of
// `swarmboot build`.
//
// A Server composes bootserve/dhcp, bootserve/tftp and bootserve/httpboot
// and records every step of every machine on one timeline:
//
//	s, err := bootserve.New(bootserve.Config{Interface: "eth1", DHCP: dhcp.ModeProxy,
//		Booter: &bootserve.DirBooter{Dir: "out"}, Artifacts: "out"})
//	if err != nil { return err }
//	return s.Run(ctx)
package bootserve

import (
	"github.com/swarmboot/swarmboot/bootserve/httpboot"
)

// Booter answers "what does this MAC boot?" (kernel, initrd, command line
// and the machine's extra arguments) or ErrUnknown.
type Booter = httpboot.Booter

// BooterFunc adapts a function to a Booter.
type BooterFunc = httpboot.BooterFunc

// Boot is what one machine boots.
type Boot = httpboot.Boot

// Machine identifies the machine a Booter is asked about.
type Machine = httpboot.Machine

// ErrUnknown is what a Booter returns for a machine it does not know.
var ErrUnknown = httpboot.ErrUnknown

// Package bootservetest gives the tests of what runs bootserve (the
// appliance daemon, `swarmboot serve`, `swarmboot appliance run`) their
// stand-in inputs: an artifacts directory holding one image and a
// directory of iPXE loaders, and a free loopback address for the HTTP
// server; and the QEMU boot tests their network (NetLab: a namespace with
// a bridge and a tap, a bootserve.Server running there). Only tests import
// it.
//
//	art, ipxe := bootservetest.Artifacts(t, t.TempDir(), "lab")
//	cfg := bootserve.Config{Artifacts: art, IPXEDir: ipxe, HTTPAddr: bootservetest.FreeAddr(t)}
package bootservetest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Stand-in contents Artifacts writes.
const (
	Kernel  = "KERNEL"              // <image>-kernel
	Initrd  = "INITRD"              // <image>-initrd.img
	Cmdline = "console=ttyS0 quiet" // <image>-cmdline (with a newline)
	UNDI    = "UNDI"                // undionly.kpxe
	EFI     = "EFI"                 // ipxe.efi
)

// Artifacts writes stand-ins for image's kernel, initrd and kernel command
// line into dir/out and for the iPXE loaders into dir/ipxe, and returns
// those two directories.
func Artifacts(tb testing.TB, dir, image string) (artifacts, ipxe string) {
	tb.Helper()
	artifacts, ipxe = filepath.Join(dir, "out"), filepath.Join(dir, "ipxe")
	for _, d := range []string{artifacts, ipxe} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for p, c := range map[string]string{
		filepath.Join(artifacts, image+"-kernel"):     Kernel,
		filepath.Join(artifacts, image+"-initrd.img"): Initrd,
		filepath.Join(artifacts, image+"-cmdline"):    Cmdline + "\n",
		filepath.Join(ipxe, "undionly.kpxe"):          UNDI,
		filepath.Join(ipxe, "ipxe.efi"):               EFI,
	} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return artifacts, ipxe
}

// FreeAddr returns a loopback TCP address ("127.0.0.1:PORT") nobody
// listens on at the moment. bootserve builds its URLs from the configured
// HTTP address, so that address cannot be ":0".
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

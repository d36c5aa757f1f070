// Package netnstest is the network-namespace setup tests of DHCP and
// netbooting share: Need skips a test that cannot make namespaces or lacks
// a tool, Pair makes a server namespace with a bridge and a client
// namespace wired into it, and Udhcpc runs busybox's DHCP client in the
// client namespace and returns what its script saw. Only tests import it.
//
//	netnstest.Need(t, "busybox")
//	srv, cli := netnstest.Pair(t, "dhcp", "10.77.0.1/24", "")
//	// … serve DHCP on br0 inside srv …
//	seen, err := netnstest.Udhcpc(t, cli, `echo "$1 ip=$ip" >> "$OUT"`, "-t", "3", "-T", "1")
package netnstest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/netns"
)

// packages names the Debian package of a tool whose name is not its own.
var packages = map[string]string{
	"busybox":  "busybox-static",
	"dhclient": "isc-dhcp-client",
	"perfdhcp": "kea-admin",
	"dnsmasq":  "dnsmasq-base",
}

// Need skips the test unless namespaces can be made here (netns.Check)
// and every tool is on PATH; the message names what is missing and the
// package to install.
func Need(tb testing.TB, tools ...string) {
	tb.Helper()
	if err := netns.Check(); err != nil {
		tb.Skipf("needs network namespaces: %v", err)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			pkg := packages[tool]
			if pkg == "" {
				pkg = tool
			}
			tb.Skipf("%s not installed (apt-get install %s)", tool, pkg)
		}
	}
}

// Pair makes a server namespace (prefix-srv-…) with bridge br0 at
// bridgeCIDR and a client namespace (prefix-cli-…) whose eth0, at
// clientCIDR ("" for no address), sits on that bridge. Both are deleted
// when the test ends.
func Pair(tb testing.TB, prefix, bridgeCIDR, clientCIDR string) (srv, cli *netns.NS) {
	tb.Helper()
	ctx := context.Background()
	srv, err := netns.New(ctx, prefix+"-srv")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	cli, err = netns.New(ctx, prefix+"-cli")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	if err := srv.AddBridge("br0", bridgeCIDR); err != nil {
		tb.Fatal(err)
	}
	if err := srv.AddVethPeer("vcli", "br0", cli, "eth0", clientCIDR); err != nil {
		tb.Fatal(err)
	}
	return srv, cli
}

// Udhcpc runs `busybox udhcpc -i eth0 -n -q -f -s SCRIPT args...` once in
// ns (at most 30 s) and returns what script appended to the file named by
// $OUT, and udhcpc's error (an *exec.ExitError when it got no lease). Its
// output goes to the test log. script is a shell script body; udhcpc
// passes the event as $1 and the offer in $ip, $boot_file, $siaddr, …
func Udhcpc(tb testing.TB, ns *netns.NS, script string, args ...string) (string, error) {
	tb.Helper()
	dir := tb.TempDir()
	scriptPath, out := filepath.Join(dir, "script"), filepath.Join(dir, "out")
	if err := os.WriteFile(scriptPath, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, "busybox", append([]string{"udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", scriptPath}, args...)...)
	cmd.Env = append(os.Environ(), "OUT="+out)
	log, err := cmd.CombinedOutput()
	tb.Logf("udhcpc in %s: %v\n%s", ns.Name(), err, log)
	seen, _ := os.ReadFile(out)
	return string(seen), err
}

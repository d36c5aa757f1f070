package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/bootservetest"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/netns"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

// infoRE matches a whole SWARMBOOT-LAB-INFO line: the serial console is read
// while the guest writes, so a line without its newline may be cut short.
var infoRE = regexp.MustCompile(`SWARMBOOT-LAB-INFO [^\r\n]*\r?\n`)

// TestLabNetbootReset PXE-boots the lab image from bootserve (full DHCP,
// TFTP, HTTP) inside a network namespace, with an empty disk: the machine
// formats it and makes a one-node swarm. Then a QMP system_reset reboots it
// over the network: the disk is kept and the swarm is still there. This is
// the lab's persistence promise, for one machine, without the appliance.
func TestLabNetbootReset(t *testing.T) {
	needApt(t)
	if err := qemu.Check(); err != nil {
		t.Skip(err)
	}
	if err := netns.Check(); err != nil {
		t.Skip(err)
	}
	for _, f := range []string{"/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("iPXE loaders missing (apt-get install ipxe): %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	art, _, _, _ := buildLab(t, ctx)

	const mac = "52:54:00:77:01:01"
	tl := &timeline.Log{}
	ns, _ := bootservetest.NetLab(t, ctx, "sblab", bootserve.Config{DHCP: dhcp.ModeFull, Artifacts: art,
		Booter: &bootserve.DirBooter{Dir: art, Machines: map[string]bootserve.MachineEntry{
			mac: {Image: "lab", Args: "swarmboot.selftest=1 swarmboot.hostname=lab-worker-1"}}},
		RouterAdverts: true, Timeline: tl})

	vm, err := qemu.Start(ctx, qemu.Config{NetNS: ns.Name(), Tap: "tap0", MAC: mac, Boot: "n",
		Disks: []string{emptyDisk(t, 1<<30)}, MemoryMiB: 1536})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	hw, _ := net.ParseMAC(mac)
	// infos waits for the n-th SWARMBOOT-LAB-INFO line.
	infos := func(n int) string {
		t.Helper()
		for {
			if all := infoRE.FindAllString(vm.Output(), -1); len(all) >= n {
				return strings.TrimSpace(all[n-1])
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no lab info #%d\ntimeline:\n%s\nserial (tail):\n%s", n, events(tl.Events(hw)), tailLines(vm.Output(), 60))
			case <-vm.Done():
				t.Fatalf("VM exited: %s\nserial (tail):\n%s", vm.Stderr(), tailLines(vm.Output(), 60))
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	start := time.Now()
	first := infos(1)
	t.Logf("first PXE boot → swarm in %v: %s\n%s", time.Since(start).Round(100*time.Millisecond), first, events(tl.Events(hw)))
	for _, w := range []string{"swarm=active", "swarm-init=done", "ingress"} {
		if !strings.Contains(first, w) {
			t.Errorf("first boot: %q lacks %s", first, w)
		}
	}
	out := vm.Output()
	for _, w := range []string{"FORMATTED=yes", "eth0 10.77.0.1"} {
		if !strings.Contains(out, w) {
			t.Errorf("first boot: serial lacks %q", w)
		}
	}
	// QEMU's NIC ROM is iPXE already, so it skips TFTP and asks for its
	// script over HTTP; the second dhcp-ack is the booted system's udhcpc.
	if miss, ok := timeline.InOrder(tl.Events(hw), "dhcp-ack", "script", "kernel", "initrd", "dhcp-ack"); !ok {
		t.Errorf("timeline lacks %s:\n%s", miss, events(tl.Events(hw)))
	}

	if err := vm.Reset(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	second := infos(2)
	t.Logf("PXE boot after reset → swarm in %v: %s", time.Since(start).Round(100*time.Millisecond), second)
	for _, w := range []string{"swarm=active", "swarm-init=skipped"} {
		if !strings.Contains(second, w) {
			t.Errorf("second boot: %q lacks %s", second, w)
		}
	}
	if tail := vm.Output()[len(out):]; !strings.Contains(tail, "FORMATTED=no") {
		t.Errorf("second boot did not keep the disk:\n%s", tailLines(tail, 30))
	}
}

func events(ev []timeline.Event) string {
	var sb strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&sb, "  %s %-14s %-15v %s\n", e.Time.Format("15:04:05.000"), e.Kind, e.IP, e.Detail)
	}
	return sb.String()
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

package bootserve_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/bootservetest"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/netns"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// pxeCase is one real QEMU network boot.
type pxeCase struct {
	firmware string // "bios" or "uefi"
	mode     dhcp.Mode
	// nativePXE boots the firmware's own PXE client (the NIC option ROM
	// disabled): OVMF fetches ipxe.efi over TFTP first.
	nativePXE bool
	mac       string
	// unknownFirst makes the first script request find an unknown machine:
	// it must wait, ask again and boot.
	unknownFirst bool
	want         []timeline.Kind
}

// bootLab is a network namespace with a bridge, a tap for the VM and a
// running bootserve.Server.
type bootLab struct {
	ns     *netns.NS
	server *bootserve.Server
	tl     *timeline.Log
}

func needRealBoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real QEMU boot skipped in -short mode")
	}
	if err := netns.Check(); err != nil {
		t.Skipf("network namespaces unavailable: %v", err)
	}
	if err := qemu.Check(); err != nil {
		t.Skipf("QEMU unavailable: %v", err)
	}
	for _, f := range []string{"/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("iPXE loaders missing (apt-get install ipxe): %v", err)
		}
	}
}

func startLab(t *testing.T, ctx context.Context, mode dhcp.Mode, unknownFirst bool) *bootLab {
	t.Helper()
	art := bootFixture(t)
	tl := &timeline.Log{}
	var booter bootserve.Booter = &bootserve.DirBooter{Dir: art}
	if unknownFirst {
		var once sync.Once
		dir := booter
		booter = bootserve.BooterFunc(func(ctx context.Context, m bootserve.Machine) (*bootserve.Boot, error) {
			unknown := false
			once.Do(func() { unknown = true })
			if unknown {
				return nil, bootserve.ErrUnknown
			}
			return dir.Boot(ctx, m)
		})
	}
	ns, s := bootservetest.NetLab(t, ctx, "sbpxe", bootserve.Config{DHCP: mode, Artifacts: art, Booter: booter,
		RetryAfter: time.Second, RouterAdverts: true, Timeline: tl, Log: testLogger(t)})
	return &bootLab{ns: ns, server: s, tl: tl}
}

// startDnsmasq runs a DHCP-only dnsmasq (no DNS, no TFTP, no PXE) in its
// own namespace, on a veth into the lab's bridge, handing out addresses.
func startDnsmasq(t *testing.T, ctx context.Context, lab *bootLab) {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Skipf("dnsmasq not installed (dnsmasq-base): %v", err)
	}
	peer, err := netns.New(ctx, "sbdhcp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	if err := lab.ns.AddVethPeer("vdhcp", "br0", peer, "eth0", "10.77.0.2/24"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := peer.Command(ctx, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=eth0", "--bind-interfaces", "--dhcp-range=10.77.0.160,10.77.0.190,255.255.255.0,1h",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"), "--log-dhcp")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", out.String())
		}
	})
}

func runPXE(t *testing.T, c pxeCase) {
	needRealBoot(t)
	// Generous: qemu.Start waits for a machine-wide VM slot that other
	// packages' boots may hold; the boot itself has its own limit below.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	lab := startLab(t, ctx, c.mode, c.unknownFirst)
	if c.mode == dhcp.ModeProxy {
		startDnsmasq(t, ctx, lab)
	}
	qc := qemu.Config{Firmware: c.firmware, NetNS: lab.ns.Name(), Boot: "n", MemoryMiB: 512,
		LogFile: filepath.Join(t.TempDir(), "serial.log")}
	qc.Tap, qc.MAC, qc.NativePXE = "tap0", c.mac, c.nativePXE
	vm, err := qemu.Start(ctx, qc) // waits for a machine-wide VM slot
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	start := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 150*time.Second)
	defer wcancel()
	line, err := vm.WaitFor(wctx, regexp.MustCompile(marker+` cmdline=`))
	mac, _ := net.ParseMAC(c.mac)
	events := lab.tl.Events(mac)
	if err != nil {
		t.Fatalf("no marker after %s: %v\ntimeline:\n%s\nserial (tail):\n%s", time.Since(start).Round(time.Second), err,
			formatEvents(events), tail(vm.Output(), 40))
	}
	elapsed := time.Since(start)
	if !strings.Contains(line, "initrd=initrd.img") || !strings.Contains(line, "console=ttyS0") {
		t.Errorf("kernel command line %q lacks initrd=initrd.img or the image's cmdline", line)
	}
	if miss, ok := timeline.InOrder(events, c.want...); !ok {
		t.Errorf("timeline lacks %q (want %v in order):\n%s", miss, c.want, formatEvents(events))
	}
	t.Logf("%s %s PXE boot to marker: %s\n%s", c.firmware, c.mode, elapsed.Round(100*time.Millisecond), formatEvents(events))
}

func formatEvents(ev []timeline.Event) string {
	var sb strings.Builder
	var t0 time.Time
	for i, e := range ev {
		if i == 0 {
			t0 = e.Time
		}
		ip := ""
		if e.IP != nil {
			ip = e.IP.String()
		}
		fmt.Fprintf(&sb, "  +%6.2fs %-14s %-15s %-8s %s\n", e.Time.Sub(t0).Seconds(), e.Kind, ip, e.Arch, e.Detail)
	}
	return sb.String()
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestPXEBIOSFull: SeaBIOS → iPXE NIC ROM → our DHCP (full) → script →
// kernel → initrd → marker. The machine is unknown at first: it gets the
// "register and retry" script, waits, asks again and boots.
func TestPXEBIOSFull(t *testing.T) {
	runPXE(t, pxeCase{firmware: "bios", mode: dhcp.ModeFull, mac: "52:54:00:77:00:01", unknownFirst: true,
		want: []timeline.Kind{timeline.DHCPDiscover, timeline.DHCPOffer, timeline.DHCPRequest, timeline.DHCPAck,
			timeline.Script, timeline.Script, timeline.Kernel, timeline.Initrd}})
}

// TestPXEBIOSProxy: addresses come from a separate dnsmasq; we only add
// the boot file (proxy DHCP).
func TestPXEBIOSProxy(t *testing.T) {
	runPXE(t, pxeCase{firmware: "bios", mode: dhcp.ModeProxy, mac: "52:54:00:77:00:02",
		want: []timeline.Kind{timeline.DHCPDiscover, timeline.DHCPOffer, timeline.Script, timeline.Kernel, timeline.Initrd}})
}

// TestPXEUEFIFull: OVMF's own PXE client (arch 7) → TFTP ipxe.efi (OVMF
// asks blksize 1468, windowsize 4) → iPXE → DHCP again → script → kernel →
// initrd → marker.
func TestPXEUEFIFull(t *testing.T) {
	runPXE(t, pxeCase{firmware: "uefi", mode: dhcp.ModeFull, nativePXE: true, mac: "52:54:00:77:00:03",
		want: []timeline.Kind{timeline.DHCPDiscover, timeline.DHCPOffer, timeline.DHCPRequest, timeline.DHCPAck,
			timeline.TFTP, timeline.DHCPDiscover, timeline.Script, timeline.Kernel, timeline.Initrd}})
}

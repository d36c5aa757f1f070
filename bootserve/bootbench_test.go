package bootserve_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/netns"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

// BenchmarkRealBootBIOS PXE-boots the same QEMU VM (SeaBIOS, iPXE NIC
// ROM, TCG) to the fixture's marker three times in one run: from our
// server (full DHCP, router advertisements on), from our server with
// router advertisements off (the iPXE IPv6 wait), and from the reference
// stack, dnsmasq (DHCP) + a plain HTTP file server. It reports seconds
// from VM start to marker and the ratio reference/ours (>1: we are
// faster).
func BenchmarkRealBootBIOS(b *testing.B) {
	if err := netns.Check(); err != nil {
		b.Skipf("network namespaces unavailable: %v", err)
	}
	if err := qemu.Check(); err != nil {
		b.Skipf("QEMU unavailable: %v", err)
	}
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		b.Skipf("dnsmasq not installed (dnsmasq-base): %v", err)
	}
	art := bootFixture(b)
	for range b.N {
		ours, stages := bootOnce(b, art, "ours", true)
		noRA, noRAStages := bootOnce(b, art, "ours", false)
		ref, _ := bootOnce(b, art, "dnsmasq", false)
		b.ReportMetric(ours.Seconds(), "s-ours")
		b.ReportMetric(noRA.Seconds(), "s-ours-noRA")
		b.ReportMetric(ref.Seconds(), "s-dnsmasq+http")
		b.ReportMetric(ref.Seconds()/ours.Seconds(), "x-vs-dnsmasq+http")
		b.Logf("SeaBIOS PXE to marker: ours %.1fs (RA off: %.1fs), dnsmasq + plain HTTP %.1fs: %.2fx",
			ours.Seconds(), noRA.Seconds(), ref.Seconds(), ref.Seconds()/ours.Seconds())
		b.Logf("our stages (s from VM start; marker at %.1f):\n%s", ours.Seconds(), stages)
		b.Logf("router advertisements off (marker at %.1f):\n%s", noRA.Seconds(), noRAStages)
	}
}

// bootOnce boots one VM against stack ("ours" or "dnsmasq") and returns
// the time from VM start to the marker.
func bootOnce(b *testing.B, art, stack string, ra bool) (time.Duration, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ns, err := netns.New(ctx, "sbbench")
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	if err := ns.AddBridge("br0", "10.77.0.1/24"); err != nil {
		b.Fatal(err)
	}
	if err := ns.AddTap("tap0", "br0"); err != nil {
		b.Fatal(err)
	}
	const mac = "52:54:00:77:01:01"
	tl := &timeline.Log{}
	rctx, stop := context.WithCancel(ctx)
	var wait func()
	switch stack {
	case "ours":
		s, err := bootserve.New(bootserve.Config{Interface: "br0", ServerIP: net.IPv4(10, 77, 0, 1).To4(), DHCP: dhcp.ModeFull,
			Pool:     &dhcp.Pool{Start: net.IPv4(10, 77, 0, 100).To4(), End: net.IPv4(10, 77, 0, 150).To4(), Netmask: net.CIDRMask(24, 32), LeaseTime: time.Hour},
			HTTPAddr: "10.77.0.1:8080", TFTPAddr: "10.77.0.1:69", Artifacts: art, StateDir: b.TempDir(),
			Booter: &bootserve.DirBooter{Dir: art}, RouterAdverts: ra, Timeline: tl, Do: ns.Do})
		if err != nil {
			b.Fatal(err)
		}
		if err := ns.Do(s.Listen); err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		wait = func() {
			if err := <-done; err != nil {
				b.Error(err)
			}
		}
	case "dnsmasq":
		wait = startReference(b, rctx, ns, art)
	}
	defer func() { stop(); wait() }()
	vm, err := qemu.Start(ctx, qemu.Config{Firmware: "bios", NetNS: ns.Name(), Tap: "tap0", MAC: mac, Boot: "n"})
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Stop()
	start := time.Now()
	wctx, wcancel := context.WithTimeout(ctx, 150*time.Second)
	defer wcancel()
	if _, err := vm.WaitFor(wctx, regexp.MustCompile(marker+` cmdline=`)); err != nil {
		b.Fatalf("%s (RA %v): no marker: %v\n%s", stack, ra, err, tail(vm.Output(), 30))
	}
	d := time.Since(start)
	m, _ := net.ParseMAC(mac)
	var sb strings.Builder
	for _, e := range tl.Events(m) {
		fmt.Fprintf(&sb, "  %6.2fs %s %s\n", e.Time.Sub(start).Seconds(), e.Kind, e.Detail)
	}
	return d, sb.String()
}

// startReference runs dnsmasq (DHCP only, handing iPXE the script URL)
// and a plain net/http file server with a static script, inside ns.
func startReference(b *testing.B, ctx context.Context, ns *netns.NS, art string) (wait func()) {
	www := b.TempDir()
	script := "#!ipxe\nkernel http://10.77.0.1:8081/fixture-kernel initrd=initrd.img console=ttyS0 panic=-1 loglevel=3\n" +
		"initrd --name initrd.img http://10.77.0.1:8081/fixture-initrd.img\nboot\n"
	if err := os.WriteFile(filepath.Join(www, "boot.ipxe"), []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, f := range []string{"fixture-kernel", "fixture-initrd.img"} {
		data, err := os.ReadFile(filepath.Join(art, f))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(www, f), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp4", "10.77.0.1:8081"); return err }); err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(www))}
	go func() { _ = srv.Serve(ln) }()
	dir := b.TempDir()
	cmd := ns.Command(ctx, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=br0", "--bind-interfaces",
		"--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h", "--dhcp-leasefile="+filepath.Join(dir, "leases"),
		"--pid-file="+filepath.Join(dir, "pid"), "--dhcp-userclass=set:ipxe,iPXE",
		"--dhcp-boot=tag:ipxe,http://10.77.0.1:8081/boot.ipxe")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = srv.Close()
		if b.Failed() {
			b.Logf("dnsmasq:\n%s", out.String())
		}
	}
}

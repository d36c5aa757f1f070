package dhcp

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/netns"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

// TestOVMFAcceptsProxyOffer boots OVMF's own PXE client (no iPXE ROM) on a
// network where dnsmasq (DHCP for addresses, and TFTP) plays the site's
// server and we answer as proxy: the firmware must take our boot file and
// fetch it. This is the real-firmware check of the proxy offer (yiaddr 0,
// option 60 PXEClient, option 43 discovery control).
func TestOVMFAcceptsProxyOffer(t *testing.T) {
	needLab(t, "dnsmasq")
	if err := qemu.Check(); err != nil {
		t.Skipf("real firmware test needs QEMU and OVMF: %v", err)
	}
	const loaders = "/usr/lib/ipxe"
	if _, err := os.Stat(filepath.Join(loaders, "ipxe.efi")); err != nil {
		t.Skipf("needs Debian's ipxe package (apt-get install ipxe): %v", err)
	}
	ctx := context.Background()
	srv, err := netns.New(ctx, "dhcpfw-srv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	site, err := netns.New(ctx, "dhcpfw-site")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { site.Close() })
	for _, err := range []error{
		srv.AddBridge("br0", "10.77.0.1/24"),
		srv.AddTap("tap0", "br0"),
		srv.AddVethPeer("vsite", "br0", site, "eth0", "10.77.0.2/24"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The site's DHCP server (addresses only) and TFTP server.
	dir := t.TempDir()
	logf := filepath.Join(dir, "dnsmasq.log")
	cmd := site.Command(ctx, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
		"--bind-interfaces", "--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h", "--enable-tftp",
		"--tftp-root="+loaders, "--dhcp-leasefile="+filepath.Join(dir, "leases"), "--log-facility="+logf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})

	var tl timeline.Log
	cfg := testConfig(ModeProxy)
	cfg.Now = nil
	cfg.Recorder = &tl
	cfg.Boot.TFTPServer = net.IPv4(10, 77, 0, 2)
	h := newHandler(t, cfg)
	(&lab{srv: srv}).serveOnly(t, h)

	const mac = "52:54:00:77:00:91"
	vm, err := qemu.Start(ctx, qemu.Config{Firmware: "uefi", NetNS: srv.Name(), Boot: "n",
		LogFile: filepath.Join(dir, "serial.log"),
		Extra: []string{"-netdev", "tap,id=pxe0,ifname=tap0,script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=pxe0,mac=" + mac + ",romfile="}})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	wctx, cancel := context.WithTimeout(ctx, 150*time.Second)
	defer cancel()
	hw, _ := net.ParseMAC(mac)
	if _, err := vm.WaitFor(wctx, regexp.MustCompile(`NBP filename is ipxe\.efi`)); err != nil {
		t.Fatalf("OVMF did not take the proxy boot file: %v\ntimeline: %v\nserial:\n%s", err, tl.Events(hw), vm.Output())
	}
	for {
		if b, _ := os.ReadFile(logf); strings.Contains(string(b), "sent "+loaders+"/ipxe.efi") {
			break
		} else if wctx.Err() != nil {
			t.Fatalf("OVMF did not fetch ipxe.efi over TFTP; dnsmasq log:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if miss, ok := timeline.InOrder(tl.Events(hw), timeline.DHCPDiscover, timeline.DHCPOffer, timeline.DHCPRequest); !ok {
		t.Errorf("timeline lacks %s: %v", miss, tl.Events(hw))
	}
}

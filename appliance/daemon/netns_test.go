package daemon

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/netns/netnstest"
)

// udhcpcScript configures the leased address (so curl can fetch) and
// prints what the server offered.
const udhcpcScript = `case "$1" in bound|renew) ip addr add "$ip/$mask" dev "$interface" ;; esac
echo "$1 ip=$ip boot_file=$boot_file" >> "$OUT"
`

// TestApplianceInNetns serves full-mode DHCP, TFTP and HTTP on a bridge in
// a namespace of its own, created (as the lab does) from inside that
// namespace with a simulated vCenter applying the site; a real DHCP client (busybox udhcpc posing as
// iPXE) and curl in a second namespace take a lease, fetch the loader,
// the script (with the kernel-line token), the kernel and the initrd, and
// the store shows DHCP → TFTP → script → kernel → initrd for that MAC.
func TestApplianceInNetns(t *testing.T) {
	netnstest.Need(t, "busybox", "curl")
	ctx := context.Background()
	srv, cli := netnstest.Pair(t, "appl", "10.77.0.1/24", "")
	s, err := site.Parse(filepath.Join(t.TempDir(), "lab.yml"), []byte(labSite), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	data, artifacts, ipxe := fixture(t)
	pool := &dhcp.Pool{Start: net.IPv4(10, 77, 0, 100), End: net.IPv4(10, 77, 0, 110), Netmask: net.CIDRMask(24, 32), LeaseTime: time.Hour}
	d := startIn(t, Config{DataDir: data, Artifacts: artifacts, APIAddr: ":8443", MirrorEvery: 20 * time.Millisecond,
		Boot: bootserve.Config{Interface: "br0", DHCP: dhcp.ModeFull, Pool: pool, IPXEDir: ipxe, Do: srv.Do},
		Site: s, Simulate: true}, srv.Do)
	if d.APIURL() != "https://10.77.0.1:8443" {
		t.Errorf("agent API URL %q, want https://10.77.0.1:8443 (the bridge address)", d.APIURL())
	}
	// The lab's flow: the simulated VM's MAC goes to the machine that
	// netboots (here the client namespace's NIC).
	<-d.Applied()
	if err := d.ApplyErr(); err != nil {
		t.Fatalf("apply on the simulator from inside the namespace: %v", err)
	}
	vms, err := d.Unenrolled()
	if err != nil || len(vms) != 1 {
		t.Fatalf("unenrolled VMs after apply: %+v, %v; want lab-m1", vms, err)
	}
	mac := vms[0].MAC
	if err := cli.IP(ctx, "link", "set", "eth0", "address", mac); err != nil {
		t.Fatal(err)
	}
	tok, err := d.IssueToken(vms[0].Name, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	lease, err := netnstest.Udhcpc(t, cli, udhcpcScript, "-t", "5", "-T", "1",
		"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x4d:69505845") // user class "iPXE"
	if err != nil {
		t.Fatalf("udhcpc: %v", err)
	}
	if !strings.Contains(lease, "bound ip=10.77.0.1") || !strings.Contains(lease, "/boot/") {
		t.Fatalf("udhcpc got %q: want a lease from the pool and the iPXE script URL", lease)
	}
	curl := func(u string) string {
		t.Helper()
		b, err := cli.Command(ctx, "curl", "-sSf", "--max-time", "10", u).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", u, err)
		}
		return string(b)
	}
	curl("tftp://10.77.0.1/undionly.kpxe")
	text := curl("http://10.77.0.1:8080/boot/" + mac + ".ipxe")
	k := kernelLine.FindStringSubmatch(text)
	if k == nil || !strings.Contains(k[2], TokenArg+"="+tok) {
		t.Fatalf("script in the namespace lacks the token on its kernel line:\n%s", text)
	}
	curl(k[1])
	for _, rd := range initrdLine.FindAllStringSubmatch(text, -1) {
		curl(rd[1])
	}
	waitStore(t, d.Store(), mac, timeline.VMCreated, timeline.Token, timeline.DHCPDiscover, timeline.DHCPOffer, timeline.DHCPRequest,
		timeline.DHCPAck, timeline.TFTP, timeline.Script, timeline.Kernel, timeline.Initrd)
}

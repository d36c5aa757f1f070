package qemu

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/debfix"
	"github.com/swarmboot/swarmboot/pkg/netns"
)

// virtioNet are the modules (in load order) the Debian kernel needs for a
// virtio NIC.
var virtioNet = []string{
	"drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_pci_modern_dev",
	"drivers/virtio/virtio_pci_legacy_dev", "drivers/virtio/virtio_pci", "net/core/failover",
	"drivers/net/net_failover", "drivers/net/virtio_net",
}

const netInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
for m in /m/*.ko; do /bin/busybox insmod $m; done
/bin/busybox ip link set eth0 up
/bin/busybox ip addr add 10.77.0.2/24 dev eth0
mac=$(/bin/busybox cat /sys/class/net/eth0/address)
hp=$(/bin/busybox sed -n 's/.*swarmboot.addr=\([^ ]*\).*/\1/p' /proc/cmdline)
# nc, not wget: the static busybox's wget crashes in glibc's resolver.
body=$(printf 'GET /?mac=%s HTTP/1.0\r\n\r\n' "$mac" | /bin/busybox nc -w 5 ${hp%:*} ${hp#*:} | /bin/busybox sed '1,/^\r*$/d')
echo "NET-RESULT mac=$mac body=$body"
/bin/busybox poweroff -f
`

// TestNICInNetns gives the VM a virtio NIC on a tap bridged inside a
// network namespace (QEMU runs inside it) and has the guest fetch a page
// from a Go HTTP server listening in that namespace.
func TestNICInNetns(t *testing.T) {
	needQEMU(t)
	if err := netns.Check(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ns, err := netns.New(ctx, "sbt-qemu")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.AddBridge("br0", "10.77.0.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := ns.AddTap("tap0", "br0"); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", "10.77.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello-from-netns")
		select {
		case got <- r.URL.Query().Get("mac"):
		default:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()

	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	extra := map[string]string{}
	for i, m := range virtioNet {
		extra[fmt.Sprintf("m/%02d-%s.ko", i, filepath.Base(m))] = filepath.Join(k.Modules, "kernel", m+".ko")
	}
	const mac = "52:54:00:77:00:02"
	vm, err := Start(ctx, Config{Kernel: k.Vmlinuz, Initrd: testInitrdWith(t, ctx, netInit, extra),
		Append: "quiet swarmboot.addr=" + ln.Addr().String(), NetNS: ns.Name(), Tap: "tap0", MAC: mac, MemoryMiB: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	re := regexp.MustCompile(`NET-RESULT mac=(\S+) body=(.*)`)
	line, err := vm.WaitFor(ctx, re)
	if err != nil {
		t.Fatalf("%v\nserial:\n%s", err, vm.Output())
	}
	m := re.FindStringSubmatch(line)
	if m[1] != mac || m[2] != "hello-from-netns" {
		t.Fatalf("guest saw mac=%s body=%q, want %s and hello-from-netns\nserial:\n%s", m[1], m[2], mac, vm.Output())
	}
	select {
	case reqMAC := <-got:
		if reqMAC != mac {
			t.Errorf("server saw mac %q", reqMAC)
		}
	default:
		t.Error("the server in the namespace saw no request")
	}
}

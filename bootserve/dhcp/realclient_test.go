package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/netns"
	"github.com/swarmboot/swarmboot/pkg/netns/netnstest"
)

// lab is a server namespace with bridge br0 (10.77.0.1/24) and a client
// namespace whose eth0 (no address) sits on that bridge.
type lab struct {
	srv, cli *netns.NS
	mac      net.HardwareAddr
}

// needLab skips unless namespaces and the tools are available.
func needLab(t testing.TB, tools ...string) {
	t.Helper()
	netnstest.Need(t, tools...)
}

func newLab(t testing.TB) *lab {
	t.Helper()
	srv, cli := netnstest.Pair(t, "dhcp", "10.77.0.1/24", "")
	ifc, err := interfaceIn(cli, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	return &lab{srv: srv, cli: cli, mac: ifc.HardwareAddr}
}

func interfaceIn(ns *netns.NS, name string) (*net.Interface, error) {
	var ifc *net.Interface
	err := ns.Do(func() (err error) {
		ifc, err = net.InterfaceByName(name)
		return err
	})
	return ifc, err
}

// serve runs ListenAndServe for h on br0 inside the server namespace
// until the test ends, and waits until it answers.
func (l *lab) serve(t testing.TB, h *Handler) {
	t.Helper()
	l.serveOnly(t, h)
	// Ready when a PXE probe from the client namespace is answered (full
	// and proxy modes both answer it).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := l.pxeOffer(t, kinds["bios"]...); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("server not answering in the namespace: %v", err)
		}
	}
}

// serveOnly starts ListenAndServe for h on br0 inside the server namespace
// and stops it when the test ends.
func (l *lab) serveOnly(t testing.TB, h *Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.srv.Do(func() error {
			return (&Server{Handler: h, Interface: "br0"}).ListenAndServe(ctx)
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ListenAndServe: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("ListenAndServe did not return after cancel")
		}
	})
}

// pxeOffer sends a broadcast DISCOVER from the client namespace with a
// raw socket (like firmware does) and returns the offer.
func (l *lab) pxeOffer(t testing.TB, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	var c *nclient4.Client
	err := l.cli.Do(func() (err error) {
		c, err = nclient4.New("eth0", nclient4.WithTimeout(500*time.Millisecond), nclient4.WithRetry(1))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.DiscoverOffer(context.Background(), mods...)
}

func labConfig(mode Mode, dir string) Config {
	cfg := testConfig(mode)
	cfg.Now = nil
	cfg.LeaseFile = filepath.Join(dir, "leases")
	return cfg
}

const udhcpcScript = `echo "$1 ip=$ip boot_file=$boot_file siaddr=$siaddr router=$router" >> "$OUT"`

// udhcpc runs busybox udhcpc once in the client namespace and returns its
// exit error and what its script saw.
func (l *lab) udhcpc(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	return netnstest.Udhcpc(t, l.cli, udhcpcScript, append([]string{"-t", "3", "-T", "1"}, extra...)...)
}

// dhclient runs ISC dhclient -1 in the client namespace; it daemonizes
// once it has a lease, so it is stopped by the PID in its pidfile.
func (l *lab) dhclient(t *testing.T) (seen, log string, err error) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	out := filepath.Join(dir, "out")
	pidf := filepath.Join(dir, "pid")
	conf := filepath.Join(dir, "conf")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$reason ip=$new_ip_address file=$new_filename\" >> "+out+"\n"), 0o755)
	os.WriteFile(conf, []byte("timeout 4;\ninitial-interval 1;\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.cli.Command(ctx, "dhclient", "-4", "-1", "-v", "-cf", conf, "-sf", script, "-lf", filepath.Join(dir, "leases"), "-pf", pidf, "eth0")
	logb, err := cmd.CombinedOutput()
	t.Logf("dhclient: %s", logb)
	if err == nil {
		stopDaemon(t, pidf)
	}
	b, _ := os.ReadFile(out)
	return string(b), string(logb), err
}

// stopDaemon stops the dhclient that daemonized with pidfile pidf: it
// waits for the daemon to write its PID, checks that the process's command
// line names our pidfile (never a process that reused a stale PID), sends
// SIGTERM and waits until it is gone.
func stopDaemon(t *testing.T, pidf string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(pidf)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if pid > 1 && strings.Contains(string(cmdline), pidf) {
			p, _ := os.FindProcess(pid)
			p.Signal(syscall.SIGTERM)
			for time.Now().Before(deadline) {
				if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(st), ") Z ") {
					return // gone (or a zombie waiting for init)
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Errorf("dhclient %d did not stop after SIGTERM", pid)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("dhclient daemon never wrote its pidfile %s", pidf)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRealClientsFullMode(t *testing.T) {
	needLab(t, "busybox", "dhclient")
	l := newLab(t)
	var tl timeline.Log
	cfg := labConfig(ModeFull, t.TempDir())
	cfg.Recorder = &tl
	h := newHandler(t, cfg)
	l.serve(t, h)

	out, err := l.udhcpc(t)
	if err != nil {
		t.Fatalf("udhcpc got no lease: %v", err)
	}
	ip, ok := h.Lease(l.mac)
	if !ok || !strings.Contains(out, "bound ip="+ip.String()+" ") || !strings.Contains(out, "router=10.77.0.1") {
		t.Fatalf("udhcpc saw %q; server lease %v %v", out, ip, ok)
	}
	// udhcpc posing as BIOS PXE firmware sees the boot file and next-server.
	out, err = l.udhcpc(t, "-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "93:0000")
	if err != nil || !strings.Contains(out, "boot_file=undionly.kpxe siaddr=10.77.0.1") {
		t.Fatalf("PXE udhcpc: %v, saw %q", err, out)
	}

	out, _, err = l.dhclient(t)
	if err != nil {
		t.Fatalf("dhclient got no lease: %v", err)
	}
	ip2, _ := h.Lease(l.mac)
	if !strings.Contains(out, "BOUND ip="+ip2.String()) || !ip2.Equal(ip) {
		t.Fatalf("dhclient saw %q; server lease %s (udhcpc had %s)", out, ip2, ip)
	}
	var kinds []string
	for _, e := range tl.Events(l.mac) {
		kinds = append(kinds, string(e.Kind))
	}
	if !strings.Contains(strings.Join(kinds, " "), "dhcp-discover dhcp-offer dhcp-request dhcp-ack") {
		t.Errorf("timeline %v lacks discover, offer, request, ack", kinds)
	}
}

func TestRealClientsProxyMode(t *testing.T) {
	needLab(t, "busybox", "dhclient")
	l := newLab(t)
	h := newHandler(t, labConfig(ModeProxy, t.TempDir()))
	l.serve(t, h)

	// A PXE client gets a proxy offer without an address, by broadcast.
	offer, err := l.pxeOffer(t, kinds["efi7"]...)
	if err != nil {
		t.Fatal(err)
	}
	if !offer.YourIPAddr.IsUnspecified() || offer.BootFileName != "ipxe.efi" || !offer.ServerIPAddr.Equal(serverIP) {
		t.Fatalf("proxy offer %s", offer.Summary())
	}
	// The follow-up on port 4011, once the client has an address.
	if err := l.cli.IP(context.Background(), "addr", "add", "10.77.0.50/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	var c *nclient4.Client
	err = l.cli.Do(func() (err error) {
		c, err = nclient4.NewWithConn(nil, l.mac, nclient4.WithUnicast(&net.UDPAddr{IP: net.IPv4(10, 77, 0, 50), Port: 68}),
			nclient4.WithTimeout(time.Second), nclient4.WithRetry(2))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := dhcpv4.New(append(kinds["efi7"], dhcpv4.WithHwAddr(l.mac),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 50)))...)
	ack, err := c.SendAndRead(context.Background(), &net.UDPAddr{IP: serverIP, Port: PXEPort}, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
	c.Close()
	if err != nil || ack.BootFileName != "ipxe.efi" {
		t.Fatalf("port 4011: %v %v", err, ack)
	}
	if err := l.cli.IP(context.Background(), "addr", "flush", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}

	// Ordinary clients get nothing at all.
	out, err := l.udhcpc(t)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || strings.Contains(out, "bound") || strings.Contains(out, "ip=10.") {
		t.Fatalf("udhcpc in proxy mode: err %v, script saw %q; want no lease", err, out)
	}
	out, log, err := l.dhclient(t)
	if err == nil || strings.Contains(out, "BOUND") || !strings.Contains(log, "No DHCPOFFERS received") {
		t.Fatalf("dhclient in proxy mode: err %v, script saw %q; want no offers", err, out)
	}
}

package bootservetest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/pkg/netns"
)

// The network NetLab makes: bridge br0 with ServerIP/24, a tap for the VM.
const (
	Bridge   = "br0"
	Tap      = "tap0"
	ServerIP = "10.77.0.1"
)

// NetLab is a boot network for a QEMU test: a namespace (named prefix-…)
// with bridge br0 10.77.0.1/24 and tap0 on it, and a bootserve.Server
// serving there from cfg until the test ends (then the server stops and
// its Run must have returned nil, then the namespace goes). NetLab fills
// what cfg leaves empty: Interface, ServerIP, HTTPAddr (:8080), TFTPAddr
// (:69), StateDir, Do, and in full DHCP mode a pool of .100–.150.
func NetLab(tb testing.TB, ctx context.Context, prefix string, cfg bootserve.Config) (*netns.NS, *bootserve.Server) {
	tb.Helper()
	ns, err := netns.New(ctx, prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	if err := ns.AddBridge(Bridge, ServerIP+"/24"); err != nil {
		tb.Fatal(err)
	}
	if err := ns.AddTap(Tap, Bridge); err != nil {
		tb.Fatal(err)
	}
	ip := net.ParseIP(ServerIP).To4()
	if cfg.Interface == "" {
		cfg.Interface = Bridge
	}
	if cfg.ServerIP == nil {
		cfg.ServerIP = ip
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = ServerIP + ":8080"
	}
	if cfg.TFTPAddr == "" {
		cfg.TFTPAddr = ServerIP + ":69"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = tb.TempDir()
	}
	if cfg.Do == nil {
		cfg.Do = ns.Do
	}
	if cfg.DHCP == dhcp.ModeFull && cfg.Pool == nil {
		cfg.Pool = &dhcp.Pool{Start: net.IPv4(ip[0], ip[1], ip[2], 100).To4(), End: net.IPv4(ip[0], ip[1], ip[2], 150).To4(),
			Netmask: net.CIDRMask(24, 32), LeaseTime: time.Hour}
	}
	s, err := bootserve.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := ns.Do(s.Listen); err != nil {
		tb.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("bootserve Run: %v", err)
		}
	})
	return ns, s
}

package dhcp

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// dora runs DISCOVER, OFFER, REQUEST, ACK through h and returns the ACK.
func dora(t testing.TB, h *Handler, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	ctx := context.Background()
	offer := h.Handle(ctx, discover(t, mac, mods...), false)
	if offer == nil {
		t.Fatalf("%s: no offer", mac)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, mods...)
	if err != nil {
		t.Fatal(err)
	}
	ack := h.Handle(ctx, req, false)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("%s: reply %v, want ACK", mac, ack)
	}
	if !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("ack %s for offer %s", ack.YourIPAddr, offer.YourIPAddr)
	}
	return ack
}

func mac(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)} }

func TestFullLifecycle(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(ModeFull)
	res := net.IPv4(10, 77, 0, 20).To4()
	cfg.Pool.Reservations = map[string]net.IP{"52-54-00-AA-BB-CC": res}
	h := newHandler(t, cfg)

	a := dora(t, h, testMAC)
	// The same client gets the same address again.
	if b := dora(t, h, testMAC); !b.YourIPAddr.Equal(a.YourIPAddr) {
		t.Errorf("second DORA gave %s, first %s", b.YourIPAddr, a.YourIPAddr)
	}
	// Reservation, outside the range.
	if r := dora(t, h, otherMAC); !r.YourIPAddr.Equal(res) {
		t.Errorf("reserved client got %s, want %s", r.YourIPAddr, res)
	}
	// Nobody else gets the reserved address, even when asking for it.
	o := h.Handle(ctx, discover(t, mac(1), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(res))), false)
	if o == nil || o.YourIPAddr.Equal(res) || o.YourIPAddr.Equal(a.YourIPAddr) {
		t.Fatalf("offer %v to a third client", o)
	}
	// Asking for another client's address: NAK.
	steal, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(2)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(a.YourIPAddr)))
	if r := h.Handle(ctx, steal, false); r == nil || r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("request for a taken address: %v, want NAK", r)
	}
	// Wrong network: NAK.
	wrong, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(3)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 1, 5))))
	if r := h.Handle(ctx, wrong, false); r == nil || r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("request on the wrong network: %v, want NAK", r)
	}
	// A REQUEST for another server's offer is not answered.
	other, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(4)), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 254))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 105))))
	if r := h.Handle(ctx, other, false); r != nil {
		t.Fatalf("answered a request for another server: %s", r.Summary())
	}
	// Renewal (ciaddr set, no server id).
	renew, _ := dhcpv4.NewRenewFromAck(a)
	if r := h.Handle(ctx, renew, false); r == nil || r.MessageType() != dhcpv4.MessageTypeAck || !r.YourIPAddr.Equal(a.YourIPAddr) {
		t.Fatalf("renewal: %v", r)
	}
	// INFORM: options, no address.
	inf, _ := dhcpv4.NewInform(mac(5), net.IPv4(10, 77, 0, 7))
	if r := h.Handle(ctx, inf, false); r == nil || r.MessageType() != dhcpv4.MessageTypeAck ||
		!r.YourIPAddr.IsUnspecified() || r.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || len(r.Router()) != 1 {
		t.Fatalf("inform: %v", r)
	}
	// RELEASE frees the address for others.
	rel, _ := dhcpv4.NewReleaseFromACK(a)
	if r := h.Handle(ctx, rel, false); r != nil {
		t.Fatalf("release answered: %s", r.Summary())
	}
	if _, ok := h.Lease(testMAC); ok {
		t.Fatal("lease still held after RELEASE")
	}
	// DECLINE takes an address out of use.
	d := dora(t, h, mac(6))
	dec, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac(6)), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(d.YourIPAddr)))
	h.Handle(ctx, dec, false)
	for i := 10; i < 30; i++ {
		o := h.Handle(ctx, discover(t, mac(i)), false)
		if o != nil && o.YourIPAddr.Equal(d.YourIPAddr) {
			t.Fatalf("declined address %s offered again", d.YourIPAddr)
		}
	}
}

func TestPoolExhaustion(t *testing.T) {
	h := newHandler(t, testConfig(ModeFull))
	seen := map[string]bool{}
	for i := 0; i < 11; i++ { // .100-.110, router/server .1 are outside
		ip := dora(t, h, mac(i)).YourIPAddr.String()
		if seen[ip] {
			t.Fatalf("%s handed out twice", ip)
		}
		seen[ip] = true
	}
	if o := h.Handle(context.Background(), discover(t, mac(99)), false); o != nil {
		t.Fatalf("offer %s from an exhausted pool", o.YourIPAddr)
	}
}

func TestRelayed(t *testing.T) {
	h := newHandler(t, testConfig(ModeFull))
	ack := dora(t, h, testMAC, dhcpv4.WithRelay(net.IPv4(10, 77, 0, 2)))
	if !ack.GatewayIPAddr.Equal(net.IPv4(10, 77, 0, 2)) {
		t.Errorf("giaddr not copied: %s", ack.GatewayIPAddr)
	}
	if o := h.Handle(context.Background(), discover(t, mac(1), dhcpv4.WithRelay(net.IPv4(10, 99, 0, 1))), false); o != nil {
		t.Fatalf("answered a relay from a subnet we have no pool for: %s", o.Summary())
	}
}

// TestLeasesPersist restarts the handler on the same lease file.
func TestLeasesPersist(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(ModeFull)
	cfg.LeaseFile = filepath.Join(dir, "leases.jsonl")
	h1, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := dora(t, h1, testMAC)
	b := dora(t, h1, otherMAC)
	rel, _ := dhcpv4.NewReleaseFromACK(b)
	h1.Handle(context.Background(), rel, false)
	h1.Close()

	// A crash in the middle of an append leaves a torn last line.
	f, err := os.OpenFile(cfg.LeaseFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, `{"ip":"10.77.0.109","mac":"02:00:`)
	f.Close()

	h2 := newHandler(t, cfg)
	ip, ok := h2.Lease(testMAC)
	if !ok || !ip.Equal(a.YourIPAddr) {
		t.Fatalf("after restart lease %v %v, want %s", ip, ok, a.YourIPAddr)
	}
	if _, ok := h2.Lease(otherMAC); ok {
		t.Fatal("released lease came back after restart")
	}
	// Another client does not get the persisted address.
	for i := 0; i < 10; i++ {
		if c := dora(t, h2, mac(i)); c.YourIPAddr.Equal(a.YourIPAddr) {
			t.Fatalf("persisted address %s given to %s", a.YourIPAddr, mac(i))
		}
	}
	data, _ := os.ReadFile(cfg.LeaseFile)
	if strings.Contains(string(data), `"mac":"02:00:`+"\n") {
		t.Fatal("torn line survived compaction")
	}
	// Expired leases are gone after a restart past their expiry.
	h2.Close()
	later := cfg.Now().Add(2 * time.Hour)
	cfg.Now = func() time.Time { return later }
	h3 := newHandler(t, cfg)
	if _, ok := h3.Lease(testMAC); ok {
		t.Fatal("expired lease survived")
	}
}

// TestLeasesConcurrent hammers the group commit and compaction.
func TestLeasesConcurrent(t *testing.T) {
	old := compactAfter
	compactAfter = 200 // compact several times during the test
	t.Cleanup(func() { compactAfter = old })
	cfg := testConfig(ModeFull)
	cfg.Pool.Start, cfg.Pool.End, cfg.Pool.Netmask = net.IPv4(10, 77, 1, 0), net.IPv4(10, 77, 255, 254), net.CIDRMask(16, 32)
	cfg.LeaseFile = filepath.Join(t.TempDir(), "leases.jsonl")
	h := newHandler(t, cfg)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]string{}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				m := mac(w*1000 + i)
				ack := dora(t, h, m)
				for range 5 { // renewals pile up records for the same lease
					renew, _ := dhcpv4.NewRenewFromAck(ack)
					if r := h.Handle(context.Background(), renew, false); r == nil || r.MessageType() != dhcpv4.MessageTypeAck {
						t.Errorf("renewal of %s: %v", m, r)
						return
					}
				}
				ip := ack.YourIPAddr.String()
				mu.Lock()
				if prev, dup := got[ip]; dup {
					t.Errorf("%s given to %s and %s", ip, prev, m)
				}
				got[ip] = m.String()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if h.leases.j.written >= 6*len(got) {
		t.Errorf("lease file never compacted: %d records for %d leases", h.leases.j.written, len(got))
	}
	h.Close()
	h2 := newHandler(t, cfg)
	for ip, m := range got {
		hw, _ := net.ParseMAC(m)
		if l, ok := h2.Lease(hw); !ok || l.String() != ip {
			t.Fatalf("%s: lease %v after restart, want %s", m, l, ip)
		}
	}
}

func TestLeaseFileLocked(t *testing.T) {
	cfg := testConfig(ModeFull)
	cfg.LeaseFile = filepath.Join(t.TempDir(), "sub", "leases.jsonl")
	h := newHandler(t, cfg)
	if _, err := NewHandler(cfg); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second handler on the same lease file: %v", err)
	}
	h.Close()
	h2 := newHandler(t, cfg) // free again after Close
	h2.Close()
}

func TestPoolSkipsServerAndRouter(t *testing.T) {
	cfg := testConfig(ModeFull)
	cfg.Pool.Start, cfg.Pool.End = net.IPv4(10, 77, 0, 0), net.IPv4(10, 77, 0, 4)
	cfg.Pool.Router = net.IPv4(10, 77, 0, 3)
	h := newHandler(t, cfg)
	got := map[string]bool{}
	for i := 0; i < 2; i++ { // .0 is the network, .1 the server, .3 the router
		got[dora(t, h, mac(i)).YourIPAddr.String()] = true
	}
	if !got["10.77.0.2"] || !got["10.77.0.4"] {
		t.Fatalf("handed out %v, want 10.77.0.2 and 10.77.0.4", got)
	}
	if o := h.Handle(context.Background(), discover(t, mac(9)), false); o != nil {
		t.Fatalf("offered %s", o.YourIPAddr)
	}
}

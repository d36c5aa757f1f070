package dhcp

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// startLoopback serves h on 127.0.0.1:0 (and a PXE socket) until the test
// ends; it returns both addresses.
func startLoopback(t *testing.T, h *Handler) (dhcpAddr, pxeAddr *net.UDPAddr) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pconn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Handler: h}
	done := make(chan error, 2)
	go func() { done <- srv.Serve(ctx, conn) }()
	go func() { done <- srv.ServePXE(ctx, pconn) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve after cancel: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Serve did not return after the context was cancelled")
			}
		}
	})
	return conn.LocalAddr().(*net.UDPAddr), pconn.LocalAddr().(*net.UDPAddr)
}

// Timeouts for clients that expect an answer (generous: CI is loaded) and
// for clients that expect silence.
const (
	answerTimeout  = 3 * time.Second
	silenceTimeout = 300 * time.Millisecond
)

func newClient(t *testing.T, server *net.UDPAddr, hw net.HardwareAddr, timeout time.Duration) *nclient4.Client {
	t.Helper()
	c, err := nclient4.NewWithConn(nil, hw,
		nclient4.WithUnicast(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}),
		nclient4.WithServerAddr(server),
		nclient4.WithTimeout(timeout), nclient4.WithRetry(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServerFullLoopback(t *testing.T) {
	t.Parallel()
	h := newHandler(t, testConfig(ModeFull))
	addr, _ := startLoopback(t, h)
	c := newClient(t, addr, testMAC, answerTimeout)
	ctx := context.Background()
	lease, err := c.Request(ctx, kinds["efi7"]...)
	if err != nil {
		t.Fatal(err)
	}
	if lease.ACK.BootFileName != "ipxe.efi" || lease.ACK.YourIPAddr.IsUnspecified() {
		t.Fatalf("ack %s", lease.ACK.Summary())
	}
	if ip, ok := h.Lease(testMAC); !ok || !ip.Equal(lease.ACK.YourIPAddr) {
		t.Fatalf("handler lease %v, client got %s", ip, lease.ACK.YourIPAddr)
	}
	// A plain client gets an address too, without a boot file.
	plain := newClient(t, addr, otherMAC, answerTimeout)
	l2, err := plain.Request(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l2.ACK.BootFileName != "" || l2.ACK.Options.Has(dhcpv4.OptionClassIdentifier) {
		t.Fatalf("plain client got boot options: %s", l2.ACK.Summary())
	}
}

func TestServerProxyLoopback(t *testing.T) {
	t.Parallel()
	h := newHandler(t, testConfig(ModeProxy))
	addr, pxe := startLoopback(t, h)
	ctx := context.Background()
	offer, err := newClient(t, addr, testMAC, answerTimeout).DiscoverOffer(ctx, kinds["bios"]...)
	if err != nil {
		t.Fatal(err)
	}
	if !offer.YourIPAddr.IsUnspecified() || offer.BootFileName != "undionly.kpxe" {
		t.Fatalf("proxy offer %s", offer.Summary())
	}
	// The follow-up on the PXE port.
	pc := newClient(t, pxe, testMAC, answerTimeout)
	req, _ := dhcpv4.New(append(kinds["bios"], dhcpv4.WithHwAddr(testMAC),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 50)))...)
	ack, err := pc.SendAndRead(ctx, pxe, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
	if err != nil {
		t.Fatal(err)
	}
	if ack.BootFileName != "undionly.kpxe" {
		t.Fatalf("PXE ack %s", ack.Summary())
	}
	// A client that does not netboot gets nothing.
	_, err = newClient(t, addr, otherMAC, silenceTimeout).DiscoverOffer(ctx)
	if !errors.Is(err, nclient4.ErrNoResponse) {
		t.Fatalf("plain client in proxy mode: err %v, want no response", err)
	}
}

func TestServerGarbage(t *testing.T) {
	t.Parallel()
	h := newHandler(t, testConfig(ModeProxy))
	addr, _ := startLoopback(t, h)
	conn, err := net.DialUDP("udp4", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, b := range [][]byte{{}, {1}, make([]byte, 300), make([]byte, 1400)} {
		conn.Write(b)
	}
	// The server still answers after the garbage.
	if _, err := newClient(t, addr, testMAC, answerTimeout).DiscoverOffer(context.Background(), kinds["efi7"]...); err != nil {
		t.Fatal(err)
	}
}

func TestReplyAddr(t *testing.T) {
	relay := net.IPv4(10, 77, 0, 2)
	client := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 50), Port: 68}
	zero := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	mk := func(mt dhcpv4.MessageType) *dhcpv4.DHCPv4 {
		m, _ := dhcpv4.New(dhcpv4.WithMessageType(mt))
		return m
	}
	relayed, _ := dhcpv4.New(dhcpv4.WithRelay(relay))
	renew, _ := dhcpv4.New(dhcpv4.WithClientIP(client.IP))
	fresh, _ := dhcpv4.New()
	for _, tc := range []struct {
		name      string
		req, resp *dhcpv4.DHCPv4
		peer      net.Addr
		want      string
	}{
		{"relay from giaddr", relayed, mk(dhcpv4.MessageTypeOffer), &net.UDPAddr{IP: relay, Port: 67}, "10.77.0.2:67"},
		{"relay elsewhere", relayed, mk(dhcpv4.MessageTypeOffer), &net.UDPAddr{IP: net.IPv4(10, 77, 0, 3), Port: 67}, "10.77.0.2:67"},
		{"nak broadcast", fresh, mk(dhcpv4.MessageTypeNak), client, "255.255.255.255:68"},
		{"unicast peer", renew, mk(dhcpv4.MessageTypeAck), client, "10.77.0.50:68"},
		{"ciaddr", renew, mk(dhcpv4.MessageTypeAck), zero, "10.77.0.50:68"},
		{"no address yet", fresh, mk(dhcpv4.MessageTypeOffer), zero, "255.255.255.255:68"},
	} {
		if got := replyAddr(tc.req, tc.resp, tc.peer).String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestServerTableLoopback sends every client kind through nclient4 and the
// loopback server, in proxy and full mode, and checks that the wire gives
// the same answer as the handler table (TestDiscoverTable).
func TestServerTableLoopback(t *testing.T) {
	for _, mode := range []Mode{ModeProxy, ModeFull} {
		h := newHandler(t, testConfig(mode))
		direct := newHandler(t, testConfig(mode))
		addr, _ := startLoopback(t, h)
		for name, mods := range kinds {
			t.Run(string(mode)+"/"+name, func(t *testing.T) {
				t.Parallel()
				want := direct.Handle(context.Background(), discover(t, testMAC, mods...), false)
				timeout := answerTimeout
				if want == nil {
					timeout = silenceTimeout
				}
				offer, err := newClient(t, addr, testMAC, timeout).DiscoverOffer(context.Background(), mods...)
				if want == nil {
					if !errors.Is(err, nclient4.ErrNoResponse) {
						t.Fatalf("got %v, %v; want no answer", offer, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if offer.BootFileName != want.BootFileName || offer.BootFileNameOption() != want.BootFileNameOption() ||
					offer.ClassIdentifier() != want.ClassIdentifier() || !offer.ServerIPAddr.Equal(want.ServerIPAddr) ||
					offer.YourIPAddr.IsUnspecified() != want.YourIPAddr.IsUnspecified() {
					t.Fatalf("over the wire:\n%s\ndirect:\n%s", offer.Summary(), want.Summary())
				}
			})
		}
	}
}

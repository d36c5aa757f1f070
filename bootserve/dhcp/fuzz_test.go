package dhcp

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandler feeds arbitrary bytes through the parser and the handler in
// every mode: nothing may panic, every reply must serialize and parse, and
// proxy mode must never answer a client that is not netbooting.
func FuzzHandler(f *testing.F) {
	for _, name := range []string{"plain", "bios", "efi7", "http16", "ipxeEFI", "vcOnly", "noArch"} {
		d, _ := dhcpv4.NewDiscovery(testMAC, kinds[name]...)
		f.Add(d.ToBytes(), false)
		r, _ := dhcpv4.New(append(kinds[name], dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 101))))...)
		f.Add(r.ToBytes(), true)
	}
	rel, _ := dhcpv4.New(dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 101)))
	f.Add(rel.ToBytes(), false)
	dec, _ := dhcpv4.New(dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline), dhcpv4.WithRelay(net.IPv4(10, 77, 0, 2)))
	f.Add(dec.ToBytes(), false)
	f.Add([]byte{}, false)

	handlers := map[Mode]*Handler{}
	for _, m := range []Mode{ModeProxy, ModeFull, ModeOff} {
		handlers[m] = newHandler(f, testConfig(m))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte, pxePort bool) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		for mode, h := range handlers {
			resp := h.Handle(ctx, req, pxePort)
			if resp == nil {
				continue
			}
			if mode == ModeOff {
				t.Fatalf("off mode answered")
			}
			c := Classify(req)
			if (mode == ModeProxy || pxePort) && !c.PXE {
				t.Fatalf("%s mode answered a non-PXE client (vendor class %q): %s", mode, req.ClassIdentifier(), resp.Summary())
			}
			if mode == ModeProxy && !resp.YourIPAddr.IsUnspecified() {
				t.Fatalf("proxy mode handed out an address: %s", resp.Summary())
			}
			if resp.TransactionID != req.TransactionID {
				t.Fatalf("xid changed")
			}
			b := resp.ToBytes()
			back, err := dhcpv4.FromBytes(b)
			if err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if f := back.BootFileNameOption(); f != "" && !strings.HasPrefix(f, "http") && f != "undionly.kpxe" && f != "ipxe.efi" && f != "custom.efi" {
				t.Fatalf("unexpected boot file %q", f)
			}
		}
	})
}

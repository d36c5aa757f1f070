package dhcp_test

import (
	"context"
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/swarmboot/swarmboot/bootserve/dhcp"
)

// A proxy-mode handler answers a BIOS PXE ROM with the iPXE loader and no
// address, and a client that already runs iPXE with its own script.
func ExampleHandler_Handle() {
	h, err := dhcp.NewHandler(dhcp.Config{
		Mode:     dhcp.ModeProxy,
		ServerIP: net.IPv4(10, 77, 0, 1),
		Boot:     dhcp.Boot{HTTPBase: "http://10.77.0.1:8080"},
	})
	if err != nil {
		panic(err)
	}
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	rom, _ := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
	offer := h.Handle(context.Background(), rom, false)
	fmt.Println(offer.MessageType(), offer.YourIPAddr, offer.ServerIPAddr, offer.BootFileName)

	ipxe, _ := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")))
	fmt.Println(h.Handle(context.Background(), ipxe, false).BootFileName)

	plain, _ := dhcpv4.NewDiscovery(mac)
	fmt.Println(h.Handle(context.Background(), plain, false) == nil)
	// Output:
	// OFFER 0.0.0.0 10.77.0.1 undionly.kpxe
	// http://10.77.0.1:8080/boot/52:54:00:12:34:56.ipxe
	// true
}

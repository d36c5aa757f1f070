// Package dhcp answers DHCPv4 for network boots, in one of three modes:
//
//   - proxy: answers only PXE clients (vendor class PXEClient or HTTPClient),
//     on port 67 without an address and on port 4011, next to the site's own
//     DHCP server. Other clients are never answered.
//   - full: owns an address pool (range, netmask, router, DNS, lease time)
//     with leases persisted across restarts, reservations by MAC, relayed
//     requests, DECLINE, RELEASE and INFORM.
//   - off: no DHCP at all; the site's DHCP server points at us.
//
// The boot file comes from the client's architecture (option 93), vendor
// class (option 60) and user class (option 77): BIOS gets undionly.kpxe,
// UEFI x64 gets ipxe.efi (or snponly.efi), UEFI HTTP boot gets an http://
// URL of the EFI loader, and a client that already runs iPXE gets the URL of
// its own script, so it never loops back into iPXE.
//
// The packet logic (Handler) is separate from the sockets (Server): a
// Handler takes a request and returns the reply, so it can be tested
// without a network.
//
//	h, err := dhcp.NewHandler(dhcp.Config{
//		Mode:     dhcp.ModeProxy,
//		ServerIP: net.IPv4(10, 77, 0, 1),
//		Boot:     dhcp.Boot{HTTPBase: "http://10.77.0.1:8080"},
//	})
//	if err != nil { ... }
//	srv := &dhcp.Server{Handler: h, Interface: "br0"}
//	err = srv.ListenAndServe(ctx) // until ctx is cancelled
package dhcp

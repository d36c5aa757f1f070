// Package sockbuf grows the receive buffer of the servers' UDP sockets.
//
// A power-on storm of hundreds of machines broadcasts its DHCP DISCOVERs
// within a millisecond. Linux's default receive buffer
// (net.core.rmem_default, 208 KiB; the kernel charges each small datagram
// its whole buffer, over a kilobyte) holds only about 166 of them and
// drops the rest before the server has read a single one; every drop
// costs a machine a retransmission (1 s for iPXE, 4 s and more for PXE
// ROMs). The boot-storm benchmark counted 37–73 dropped DISCOVERs at 200
// clients and 555 drops at 500.
package sockbuf

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Default is the receive buffer the servers ask for: room for a few
// thousand queued requests.
const Default = 4 << 20

// Grow makes the receive buffer of c at least n bytes and returns the size
// the kernel reports (which counts its bookkeeping: about twice what was
// asked). It never shrinks a buffer. With CAP_NET_ADMIN (the DHCP server
// runs as root) it goes beyond net.core.rmem_max (SO_RCVBUFFORCE);
// otherwise it gets as much as rmem_max allows.
func Grow(c syscall.Conn, n int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("socket receive buffer: %w", err)
	}
	var got int
	var serr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if cur, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil && cur >= 2*n {
			got = cur
			return
		}
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); err != nil {
			if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, n); err != nil {
				serr = fmt.Errorf("socket receive buffer %d bytes: %w", n, err)
			}
		}
		got, err = unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF)
		if err != nil && serr == nil {
			serr = fmt.Errorf("socket receive buffer: %w", err)
		}
	})
	if err != nil {
		return 0, fmt.Errorf("socket receive buffer: %w", err)
	}
	return got, serr
}

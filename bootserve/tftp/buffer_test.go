package tftp

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/swarmboot/swarmboot/bootserve/internal/sockbuf"
)

// TestRequestSocketBuffer: the request socket queues a storm of read
// requests (the DHCP server acknowledges hundreds of machines at once
// after one lease-file sync) instead of dropping them.
func TestRequestSocketBuffer(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: growing socket buffers beyond net.core.rmem_max takes CAP_NET_ADMIN")
	}
	fx := startServer(t)
	if _, _, err := get(t, fx.addr, "small.txt", 0); err != nil { // Serve is running
		t.Fatal(err)
	}
	rc, err := fx.conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var gerr error
	if err := rc.Control(func(fd uintptr) { n, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if n < 2*sockbuf.Default {
		t.Errorf("request socket receive buffer %d bytes, want at least %d", n, 2*sockbuf.Default)
	}
}

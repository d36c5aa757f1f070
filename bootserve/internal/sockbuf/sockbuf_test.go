package sockbuf

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func rcvbuf(t *testing.T, c *net.UDPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var gerr error
	if err := rc.Control(func(fd uintptr) { n, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return n
}

// want is what Grow(n) must reach: n doubled by the kernel, capped by
// rmem_max when we may not force it.
func want(t *testing.T, n int) int {
	t.Helper()
	if os.Geteuid() == 0 {
		return 2 * n
	}
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatal(err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return 2 * min(n, max)
}

func TestGrow(t *testing.T) {
	t.Parallel()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := rcvbuf(t, c)
	got, err := Grow(c, Default)
	if err != nil && os.Geteuid() == 0 {
		t.Fatalf("Grow as root: %v", err)
	}
	if w := want(t, Default); got < w || rcvbuf(t, c) != got {
		t.Errorf("Grow(%d) = %d (socket says %d, was %d), want at least %d", Default, got, rcvbuf(t, c), before, w)
	}
	// It never shrinks.
	if small, err := Grow(c, 1024); err != nil || small != got || rcvbuf(t, c) != got {
		t.Errorf("Grow(1024) after Grow(%d) = %d, %v (socket %d), want %d unchanged", Default, small, err, rcvbuf(t, c), got)
	}
}

func TestGrowClosed(t *testing.T) {
	t.Parallel()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := Grow(c, Default); err == nil {
		t.Error("Grow on a closed socket: want an error")
	}
}

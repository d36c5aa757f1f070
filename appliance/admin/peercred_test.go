package admin

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPeerCredSocketpair reads the real peer credentials of a socketpair
// (this process) and checks checkCred with them and with forged uids:
// the refusal path is tested without switching users (TestRefusedAsNobody
// does switch, as root).
func TestPeerCredSocketpair(t *testing.T) {
	t.Parallel()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	cred, err := peerCred(conns[0])
	if err != nil {
		t.Fatal(err)
	}
	if cred.UID != uint32(os.Getuid()) || int(cred.PID) != os.Getpid() {
		t.Fatalf("peer credentials %+v, want uid %d pid %d", cred, os.Getuid(), os.Getpid())
	}
	if err := checkCred(cred, cred.UID); err != nil {
		t.Errorf("own uid refused: %v", err)
	}
	if err := checkCred(Cred{UID: 0, PID: 1}, 1000); err != nil {
		t.Errorf("root refused: %v", err)
	}
	forged := cred
	forged.UID = 54321
	err = checkCred(forged, 1000)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "uid 54321") || !strings.Contains(err.Error(), "run the command as root or as uid 1000") {
		t.Errorf("forged uid 54321: %v, want a refusal naming the uid and what to do", err)
	}
	if _, err := peerCred(&net.TCPConn{}); err == nil {
		t.Error("peer credentials of a TCP connection")
	}
}

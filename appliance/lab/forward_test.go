package lab

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPortOwner finds this process as the holder of a port it listens on,
// and listenHost names it when the port is asked for again.
func TestPortOwner(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	pid, comm, ok := portOwner(addr)
	if !ok || pid != os.Getpid() {
		t.Fatalf("portOwner(%s) = %d %q %v, want this process %d", addr, pid, comm, ok, os.Getpid())
	}
	if exe, _ := os.Executable(); !strings.HasPrefix(filepath.Base(exe), comm) {
		t.Errorf("portOwner comm %q, this process is %s", comm, exe)
	}
	_, err = listenHost(addr)
	if err == nil || !strings.Contains(err.Error(), addr+" is already in use by PID") || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("listenHost on a taken port: %v", err)
	}
	if _, _, ok := portOwner("127.0.0.1:1"); ok {
		t.Error("portOwner found a listener on port 1")
	}
}

// TestListeningInodes reads the /proc/net/tcp format: only LISTEN (0A)
// sockets on the port count.
func TestListeningInodes(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "tcp")
	text := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
`
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(listeningInodes(f, 8080), ","); got != "4242" {
		t.Errorf("listeningInodes(8080) = %q, want 4242", got)
	}
	if got := listeningInodes(f, 8082); len(got) != 0 {
		t.Errorf("listeningInodes(8082) = %v, want none", got)
	}
}

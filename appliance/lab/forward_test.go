package lab

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

// TestForwardOnly: the host forward passes the operator's reads and
// refuses boot scripts (they carry tokens), artifacts and writes.
func TestForwardOnly(t *testing.T) {
	t.Parallel()
	h := forwardOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "passed") }))
	for _, c := range []struct {
		method, path string
		pass         bool
	}{
		{"GET", "/api/machines", true},
		{"GET", "/api/machines/52:54:00:00:00:01/events", true},
		{"HEAD", "/metrics", true},
		{"GET", "/healthz", true},
		{"GET", "/boot/52:54:00:00:00:01.ipxe", false},
		{"GET", "/artifacts/lab-initrd.img", false},
		{"GET", "/undionly.kpxe", false},
		{"GET", "/api", false},
		{"POST", "/api/machines", false},
		{"GET", "/api/../boot/x.ipxe", false},
		{"GET", "/api/%2e%2e/boot/x.ipxe", false},
		{"GET", "/api/machines%2F..%2F..%2Fboot%2Fx.ipxe", false},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, "http://lab"+c.path, nil))
		if passed := rec.Code == http.StatusOK && rec.Body.String() == "passed"; passed != c.pass {
			t.Errorf("%s %s: %d %q, want passed=%v", c.method, c.path, rec.Code, rec.Body.String(), c.pass)
		}
	}
}

// FuzzForwardOnly: whatever the request line, what passes is a clean read
// of /api/…, /metrics or /healthz — never a boot script or an artifact.
func FuzzForwardOnly(f *testing.F) {
	for _, s := range []string{"/api/machines", "/boot/52:54:00:00:00:01.ipxe", "/api/%2e%2e/boot/x", "/metrics", "//api/x", "/api/./x"} {
		f.Add("GET", s)
	}
	h := forwardOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "passed") }))
	f.Fuzz(func(t *testing.T, method, target string) {
		req, err := http.NewRequest(method, "http://lab"+target, nil)
		if err != nil || req.URL.Host != "lab" {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Body.String() != "passed" {
			return
		}
		p := req.URL.Path
		if req.Method != "GET" && req.Method != "HEAD" || strings.Contains(p, "..") || strings.Contains(p, "/boot/") ||
			strings.Contains(p, "/artifacts/") || !(strings.HasPrefix(p, "/api/") || p == "/metrics" || p == "/healthz") {
			t.Fatalf("%s %q (path %q) passed the forward", method, target, p)
		}
	})
}

package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// traversal holds names that must never be served.
var traversal = []string{
	"../secret", "../../../../etc/passwd", "/etc/passwd", "//etc/passwd",
	"a/../../secret", `..\secret`, `a\..\..\secret`, "./../secret",
	"escape", "abs", "sub/../../secret", "..", "fifo", "sub", ".",
	strings.Repeat("a/", 200) + "x", "a\nb", "dev-null", "ok\x7f",
}

type fixture struct {
	root, base string
	big        []byte
	addr       string
	conn       net.PacketConn
	log        *timeline.Log
	reg        *prometheus.Registry
}

func startServer(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	fx := &fixture{root: root, base: base, log: &timeline.Log{}, reg: prometheus.NewRegistry()}
	mustDo(t, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(base, "secret"), []byte("SECRET"), 0o644))
	mustDo(t, os.WriteFile(filepath.Join(root, "small.txt"), []byte("hello tftp\n"), 0o644))
	fx.big = make([]byte, 3<<20+123)
	_, _ = rand.Read(fx.big)
	mustDo(t, os.WriteFile(filepath.Join(root, "sub", "big.bin"), fx.big, 0o644))
	mustDo(t, os.Symlink("../secret", filepath.Join(root, "escape")))
	mustDo(t, os.Symlink(filepath.Join(base, "secret"), filepath.Join(root, "abs")))
	mustDo(t, os.Symlink("/dev/null", filepath.Join(root, "dev-null")))
	mustDo(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))

	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	mustDo(t, err)
	fx.addr, fx.conn = conn.LocalAddr().String(), conn
	mac, _ := net.ParseMAC("52:54:00:aa:bb:cc")
	s := &Server{Root: root, Recorder: fx.log, Metrics: fx.reg, Timeout: 500 * time.Millisecond,
		Resolve: func(ip net.IP) net.HardwareAddr {
			if ip.IsLoopback() {
				return mac
			}
			return nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return fx
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, addr, name string, blksize int) ([]byte, int64, error) {
	t.Helper()
	c, err := tftp.NewClient(addr)
	if err != nil {
		return nil, 0, err
	}
	c.SetTimeout(time.Second)
	c.SetRetries(2)
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(true)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, 0, err
	}
	tsize, _ := wt.(tftp.IncomingTransfer).Size()
	var buf bytes.Buffer
	_, err = wt.WriteTo(&buf)
	return buf.Bytes(), tsize, err
}

func TestServeFiles(t *testing.T) {
	t.Parallel()
	fx := startServer(t)
	for _, bs := range []int{0, 1468, 8192} { // 8192 is capped to 1468
		got, tsize, err := get(t, fx.addr, "sub/big.bin", bs)
		if err != nil {
			t.Fatalf("blksize %d: %v", bs, err)
		}
		if !bytes.Equal(got, fx.big) {
			t.Fatalf("blksize %d: got %d bytes, want %d identical", bs, len(got), len(fx.big))
		}
		if tsize != int64(len(fx.big)) {
			t.Errorf("blksize %d: tsize %d, want %d", bs, tsize, len(fx.big))
		}
	}
	got, _, err := get(t, fx.addr, "small.txt", 0)
	if err != nil || string(got) != "hello tftp\n" {
		t.Fatalf("small.txt = %q, %v", got, err)
	}
	// The server accounts a transfer when the last ACK arrives, which may
	// be just after the client returns.
	waitFor(t, func() bool { return metricSum(t, fx.reg, "swarmboot_tftp_transfers_total") == 4 })
	mac, _ := net.ParseMAC("52:54:00:aa:bb:cc")
	ev := fx.log.Events(mac)
	if len(ev) != 4 || ev[0].Kind != timeline.TFTP || ev[0].Detail != "sub/big.bin" || !ev[0].IP.IsLoopback() {
		t.Errorf("timeline = %+v", ev)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

func gatherNames(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	mustDo(t, err)
	out := map[string]bool{}
	for _, mf := range mfs {
		out[mf.GetName()] = true
	}
	return out
}

// metricSum adds up every series of the counter name.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	mustDo(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestTraversalCorpus(t *testing.T) {
	t.Parallel()
	fx := startServer(t)
	for _, name := range traversal {
		got, _, err := get(t, fx.addr, name, 0)
		if err == nil {
			t.Errorf("%q served %q, want a TFTP error", name, got)
			continue
		}
		if strings.Contains(err.Error(), fx.base) {
			t.Errorf("%q: error leaks the path: %v", name, err)
		}
		if !strings.Contains(err.Error(), "access violation") && !strings.Contains(err.Error(), "file not found") {
			t.Errorf("%q: error %q, want access violation or file not found", name, err)
		}
	}
	if n := metricSum(t, fx.reg, "swarmboot_tftp_failures_total"); n < float64(len(traversal)) {
		t.Errorf("failures_total = %v, want ≥ %d", n, len(traversal))
	}
	for _, m := range fx.log.Machines() {
		for _, e := range fx.log.Events(m.MAC) {
			if !strings.Contains(e.Detail, "refused") {
				t.Errorf("refusal recorded as %q", e.Detail)
			}
		}
	}
}

// TestNULInName sends a raw RRQ whose name holds a NUL: pin/tftp splits
// the packet at NUL, so the server sees only the part before it; what
// follows must not be a way around the checks.
func TestNULInName(t *testing.T) {
	t.Parallel()
	fx := startServer(t)
	reply := rawRRQ(t, fx.addr, "small.txt\x00../secret\x00octet\x00")
	if len(reply) < 4 {
		t.Fatalf("no reply")
	}
	if bytes.Contains(reply, []byte("SECRET")) {
		t.Fatalf("secret leaked: %q", reply)
	}
}

// TestWindowSizeFallsBack asks for windowsize 4 (as OVMF does): the OACK
// must not claim it, and the lock-step transfer must deliver the file.
func TestWindowSizeFallsBack(t *testing.T) {
	t.Parallel()
	fx := startServer(t)
	reply := rawRRQ(t, fx.addr, "small.txt\x00octet\x00blksize\x001468\x00windowsize\x004\x00tsize\x000\x00")
	if len(reply) < 2 || reply[1] != 6 {
		t.Fatalf("reply %q is not an OACK", reply)
	}
	if bytes.Contains(reply, []byte("windowsize")) {
		t.Errorf("OACK acknowledges windowsize: %q", reply)
	}
	if !bytes.Contains(reply, []byte("blksize\x001468\x00")) || !bytes.Contains(reply, []byte("tsize\x0011\x00")) {
		t.Errorf("OACK %q lacks blksize 1468 or tsize 11", reply)
	}
	// rawRRQ declined after the OACK, as firmware does to learn the size:
	// a size probe, not a failure.
	mac, _ := net.ParseMAC("52:54:00:aa:bb:cc")
	waitFor(t, func() bool {
		ev := fx.log.Events(mac)
		return len(ev) == 1 && ev[0].Detail == "small.txt size probe"
	})
	if _, ok := gatherNames(t, fx.reg)["swarmboot_tftp_failures_total"]; ok {
		t.Error("size probe counted as a failure")
	}
}

// rawRRQ sends one read request and returns the first reply packet.
func rawRRQ(t *testing.T, addr, body string) []byte {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	mustDo(t, err)
	defer c.Close()
	// The server answers from a new port: listen on the same local port.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	mustDo(t, err)
	defer pc.Close()
	ua, _ := net.ResolveUDPAddr("udp4", addr)
	_, err = pc.WriteTo(append([]byte{0, 1}, body...), ua)
	mustDo(t, err)
	_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65536)
	n, from, err := pc.ReadFrom(buf)
	mustDo(t, err)
	// Abort the transfer politely.
	_, _ = pc.WriteTo([]byte{0, 5, 0, 0, 'b', 'y', 'e', 0}, from)
	return buf[:n]
}

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	fx := startServer(t)
	want := sha256.Sum256(fx.big)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _, err := get(t, fx.addr, "sub/big.bin", 1468)
			if err == nil && sha256.Sum256(got) != want {
				err = errors.New("content differs")
			}
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServeNeedsRoot(t *testing.T) {
	t.Parallel()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	mustDo(t, err)
	defer conn.Close()
	err = (&Server{}).Serve(context.Background(), conn)
	if err == nil || !strings.Contains(err.Error(), "Root") {
		t.Errorf("Serve without Root = %v", err)
	}
	err = (&Server{Root: "/nonexistent/swarmboot"}).Serve(context.Background(), conn)
	if err == nil {
		t.Error("Serve with a missing root succeeded")
	}
}

// fakeRF stands in for pin/tftp's sender in the fuzz test.
type fakeRF struct{ n int64 }

func (f *fakeRF) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, r)
	f.n = n
	return n, err
}

func FuzzName(f *testing.F) {
	for _, s := range traversal {
		f.Add(s)
	}
	f.Add("small.txt")
	f.Add("sub/big.bin")
	base := f.TempDir()
	root := filepath.Join(base, "root")
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o755); err != nil {
		f.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(base, "secret"), []byte("SECRET"), 0o644)
	_ = os.WriteFile(filepath.Join(root, "small.txt"), []byte("hello"), 0o644)
	_ = os.Symlink("../secret", filepath.Join(root, "escape"))
	_ = os.Symlink("../../secret", filepath.Join(root, "sub", "escape"))
	s := &Server{Root: root}
	h, closeFn := s.handlerForTest(f)
	defer closeFn()
	f.Fuzz(func(t *testing.T, name string) {
		rf := &fakeRF{}
		_ = h.read(name, rf)
		// Only small.txt (5 bytes) can ever be read; the secret (6 bytes)
		// lies outside the root.
		if rf.n != 0 && rf.n != 5 {
			t.Fatalf("name %q read %d bytes", name, rf.n)
		}
	})
}

package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/debfix"
)

func need(t *testing.T) {
	t.Helper()
	if err := Check(); err != nil {
		t.Skip(err)
	}
}

func newNS(t *testing.T, ctx context.Context, prefix string) *NS {
	t.Helper()
	ns, err := New(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(ns.Path()); err == nil {
			t.Errorf("%s still exists after Close", ns.Path())
		}
	})
	return ns
}

// lab makes hub (bridge br0 10.77.0.1/24) with peers a (.2) and b (.3) on
// veths.
func lab(t *testing.T, ctx context.Context) (hub, a, b *NS) {
	hub, a, b = newNS(t, ctx, "sbt-hub"), newNS(t, ctx, "sbt-a"), newNS(t, ctx, "sbt-b")
	if err := hub.AddBridge("br0", "10.77.0.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := hub.AddVethPeer("va", "br0", a, "eth0", "10.77.0.2/24"); err != nil {
		t.Fatal(err)
	}
	if err := hub.AddVethPeer("vb", "br0", b, "eth0", "10.77.0.3/24"); err != nil {
		t.Fatal(err)
	}
	return hub, a, b
}

func TestNewRejectsBadPrefix(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "../x", "a b", "UPPER", strings.Repeat("x", 40)} {
		if _, err := New(context.Background(), p); err == nil {
			t.Errorf("New(%q) accepted", p)
		}
	}
}

func TestPingOverBridge(t *testing.T) {
	need(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bb, err := debfix.Busybox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hub, a, b := lab(t, ctx)
	if err := hub.AddTap("tap0", "br0"); err != nil {
		t.Fatal(err)
	}
	out, err := hub.Command(ctx, "ip", "-o", "link", "show", "tap0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "master br0") {
		t.Fatalf("tap0 not on br0: %s %v", out, err)
	}
	for _, c := range []struct {
		from *NS
		to   string
	}{{a, "10.77.0.3"}, {b, "10.77.0.2"}, {a, "10.77.0.1"}, {hub, "10.77.0.3"}} {
		out, err := c.from.Command(ctx, bb, "ping", "-c", "1", "-W", "3", c.to).CombinedOutput()
		if err != nil {
			t.Errorf("ping %s from %s: %v\n%s", c.to, c.from.Name(), err, out)
		}
	}
	names, err := List("sbt-hub-")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == hub.Name()
	}
	if !found {
		t.Errorf("List(sbt-hub-) = %v, lacks %s", names, hub.Name())
	}
	if _, err := Open(hub.Name()); err != nil {
		t.Error(err)
	}
}

// TestDoListener opens a Go HTTP listener inside hub with Do and reaches it
// with curl from peer a.
func TestDoListener(t *testing.T) {
	need(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hub, a, _ := lab(t, ctx)
	before, _ := os.Readlink("/proc/self/ns/net")
	var ln net.Listener
	err := hub.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "10.77.0.1:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", hub.Name())
	})}
	go srv.Serve(ln)
	defer srv.Close()
	out, err := a.Command(ctx, "curl", "-sS", "--max-time", "5", "http://"+ln.Addr().String()+"/").CombinedOutput()
	if err != nil || string(out) != "hello from "+hub.Name() {
		t.Fatalf("curl from %s: %q, %v", a.Name(), out, err)
	}
	// The listener's address does not exist outside the namespace.
	if l2, err := net.Listen("tcp", "10.77.0.1:0"); err == nil {
		l2.Close()
		t.Error("10.77.0.1 is bindable outside the namespace: Do leaked the namespace")
	}
	after, _ := os.Readlink("/proc/self/ns/net")
	if before != after {
		t.Errorf("process namespace changed: %s → %s", before, after)
	}
	// An error from fn comes back, and the thread is restored.
	if err := hub.Do(func() error { return fmt.Errorf("boom") }); err == nil || err.Error() != "boom" {
		t.Errorf("Do error = %v, want boom", err)
	}
}

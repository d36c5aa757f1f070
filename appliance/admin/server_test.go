package admin

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/appliance/enroll"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

type env struct {
	st   *store.Store
	api  *enroll.Server
	url  string // agent API
	sock string
	c    *Client
	logs *testlog.Buffer
	stop func() // stops the admin server (Serve's context)
}

// serve runs an agent API and the admin socket on one store, as the
// appliance does, until the test ends; opts adjust the admin server.
func serve(t *testing.T, dir string, opts ...func(*Server)) *env {
	t.Helper()
	st, authority := enrolltest.Open(t)
	e := &env{st: st, logs: &testlog.Buffer{}, sock: filepath.Join(dir, SocketName)}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.api = &enroll.Server{Store: st, CA: authority, Hosts: []string{"127.0.0.1"}, Log: log, FlushEvery: 20 * time.Millisecond}
	e.url = enrolltest.Serve(t, e.api)
	l, err := Listen(e.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Ops: &Ops{Store: st, Revoker: e.api}, Log: log}
	for _, o := range opts {
		o(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin Serve: %v", err)
		}
		l.Close()
	})
	e.c = NewClient(e.sock)
	t.Cleanup(e.c.CloseIdle)
	return e
}

// TestAdminSocket creates a token over the socket, enrolls a node with
// it through the agent API, lists it, revokes it over the socket and sees
// its mTLS heartbeat refused; the token is never logged.
func TestAdminSocket(t *testing.T) {
	t.Parallel()
	e := serve(t, t.TempDir())
	ctx := context.Background()
	fi, err := os.Lstat(e.sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket %s: %v, %v; want a socket with mode 0600", e.sock, fi.Mode(), err)
	}
	if err := e.c.Ping(ctx); err != nil {
		t.Fatalf("Ping of a serving socket: %v", err)
	}
	const mac = "52:54:00:aa:00:01"
	tr, err := e.c.CreateToken(ctx, TokenRequest{MAC: "52-54-00-AA-00-01", TTL: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Token) < 40 || time.Until(tr.Expires) < 119*time.Minute || time.Until(tr.Expires) > 2*time.Hour {
		t.Fatalf("token response %+v: want a token valid 2h", tr)
	}
	if _, err := e.c.CreateToken(ctx, TokenRequest{VM: "nope"}); err == nil || !strings.Contains(err.Error(), "--mac") {
		t.Errorf("token for an unknown VM: %v, want NewToken's refusal", err)
	}

	// The token is spendable: the agent's own client enrolls with it.
	cl, _, resp := enrolltest.Enroll(t, e.url, e.api.CA.CertPEM, tr.Token, "00000000-0000-0000-0000-0000000000a1", mac)
	rep := api.Report{ImageVersion: "lab-1", Swarm: api.SwarmState{State: "active", Role: api.RoleWorker, NodeID: "n1"}}
	if err := cl.Report(ctx, rep); err != nil {
		t.Fatalf("heartbeat before revoke: %v", err)
	}

	var n Node
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		nodes, err := e.c.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 1 && nodes[0].Swarm.State == "active" {
			n = nodes[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes %+v: want one with its report's swarm state", nodes)
		}
	}
	if n.Name != resp.Node || n.Role != api.RoleWorker || len(n.MACs) != 1 || n.MACs[0] != mac || n.Image != "lab-1" ||
		n.Swarm.NodeID != "n1" || n.LastSeen.IsZero() || !n.Revoked.IsZero() || n.Enrolled.IsZero() {
		t.Errorf("listed node %+v", n)
	}

	rv, err := e.c.Revoke(ctx, n.Name)
	if err != nil || rv.Already || rv.Revoked.IsZero() {
		t.Fatalf("revoke: %+v, %v", rv, err)
	}
	// No manager agent reported: the swarm node stays, and the note says
	// how to remove it.
	if !strings.Contains(rv.SwarmNote, "swarm node n1 stays in the swarm") || !strings.Contains(rv.SwarmNote, "docker node rm --force n1") {
		t.Errorf("revoke's swarm note %q: want n1 staying and the command to remove it", rv.SwarmNote)
	}
	err = cl.Report(ctx, rep)
	if !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("heartbeat after revoke: %v, want 403 certificate revoked", err)
	}
	if rv2, err := e.c.Revoke(ctx, n.Name); err != nil || !rv2.Already || !rv2.Revoked.Equal(rv.Revoked) || rv2.SwarmNote != "" {
		t.Errorf("second revoke: %+v, %v; want Already with the first time", rv2, err)
	}
	if _, err := e.c.Revoke(ctx, "ghost"); !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), "no node ghost: see swarmboot node ls") {
		t.Errorf("revoke of an unknown node: %v", err)
	}
	nodes, err := e.c.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Revoked.IsZero() {
		t.Errorf("nodes after revoke: %+v, %v; want it revoked", nodes, err)
	}
	if enrolltest.Events(t, e.st, mac, "revoke") < 1 { // a second one says whether the swarm node stayed
		t.Error("no revoke event on the node's timeline")
	}
	l := e.logs.String()
	if strings.Contains(l, tr.Token) {
		t.Error("the token is in the logs")
	}
	for _, want := range []string{"enrollment token created", "node certificate revoked", "certificate revoked", "docker node rm --force n1"} {
		if !strings.Contains(l, want) {
			t.Errorf("logs lack %q (capture broken?):\n%s", want, l)
		}
	}
}

// TestListenStaleAndInUse: a socket file nothing answers on is replaced,
// a live one is refused (and left), a file that is not a socket is left,
// and Close removes the socket.
func TestListenStaleAndInUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close() // as a crashed run leaves it
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Errorf("second Listen on a live socket: %v, want ErrInUse", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the live socket was removed: %v", err)
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
	if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Error("a regular file was replaced")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("leftovers in %s: %v", dir, ents)
	}
	long := filepath.Join(dir, strings.Repeat("d", 120), SocketName)
	if _, err := Listen(long); err == nil || !strings.Contains(err.Error(), "shorter --data-dir") {
		t.Errorf("overlong path: %v", err)
	}
}

// TestClientNotRunning: no socket, or one left by a crashed run, is
// ErrNotRunning (the CLI then uses the store).
func TestClientNotRunning(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), SocketName)
	c := NewClient(path)
	if _, err := c.Nodes(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no socket: %v, want ErrNotRunning", err)
	}
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if err := c.Ping(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("stale socket: %v, want ErrNotRunning", err)
	}
}

// TestOpsOffline revokes on a store no appliance serves (the CLI's path).
func TestOpsOffline(t *testing.T) {
	t.Parallel()
	st, _ := enrolltest.Open(t)
	if err := st.Update(func(tx *store.Tx) error {
		if err := tx.PutNode(store.Node{Name: "w3", MACs: []string{"52:54:00:00:00:09"}, Role: "worker", CertSerial: "cd", KeyFingerprint: "k3", SwarmNodeID: "s3"}); err != nil {
			return err
		}
		return tx.PutNode(store.Node{Name: "w1", MACs: []string{"52:54:00:00:00:07"}, Role: "worker", CertSerial: "ab", KeyFingerprint: "k"})
	}); err != nil {
		t.Fatal(err)
	}
	o := &Ops{Store: st}
	if _, err := o.CreateToken(TokenRequest{MAC: "52:54:00:00:00:08", KernelLine: true}); !errors.Is(err, ErrNeedsAppliance) || !strings.Contains(err.Error(), "without --kernel-line") {
		t.Errorf("kernel-line token without an appliance: %v", err)
	}
	if _, err := o.Revoke(t.Context(), "w2"); !errors.Is(err, ErrNoNode) {
		t.Errorf("unknown node: %v", err)
	}
	r, err := o.Revoke(t.Context(), "w1")
	if err != nil || r.Revoked.IsZero() || r.Already {
		t.Fatalf("revoke: %+v, %v", r, err)
	}
	// w1 never reported a swarm node; w3 did (stored), and with no
	// appliance nobody can remove it.
	if r.SwarmNote != "it never reported a swarm node ID: nothing to remove from the swarm" {
		t.Errorf("swarm note of a node without a report: %q", r.SwarmNote)
	}
	start := time.Now()
	r, err = o.Revoke(t.Context(), "w3")
	if err != nil || !strings.Contains(r.SwarmNote, "swarm node s3 stays in the swarm (the appliance is not running") ||
		!strings.Contains(r.SwarmNote, "docker node rm --force s3") || time.Since(start) > 5*time.Second {
		t.Errorf("offline revoke of a swarm node: %+v, %v after %v", r, err, time.Since(start))
	}
	st.View(func(tx *store.Tx) error {
		if ok, _ := tx.CertRevoked("ab"); !ok {
			t.Error("certificate serial not revoked")
		}
		return nil
	})
	ns, err := o.Nodes()
	if err != nil || len(ns) != 2 || ns[0].Revoked.IsZero() || ns[0].Swarm.State != "" {
		t.Errorf("nodes: %+v, %v", ns, err)
	}
}

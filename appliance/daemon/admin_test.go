package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/bootservetest"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

// loopbackConfig is a daemon on loopback with no site.
func loopbackConfig(t *testing.T, logs *testlog.Buffer) Config {
	t.Helper()
	data, artifacts, ipxe := fixture(t)
	apiLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Config{DataDir: data, Artifacts: artifacts, APIListener: apiLn, MirrorEvery: 20 * time.Millisecond,
		Boot: bootserve.Config{DHCP: dhcp.ModeOff, ServerIP: net.IPv4(127, 0, 0, 1), IPXEDir: ipxe,
			HTTPAddr: bootservetest.FreeAddr(t), TFTPAddr: "127.0.0.1:0"},
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// TestAdminSocketRunningDaemon drives a running appliance through its
// admin socket: a token created there enrolls a machine through the agent
// API, the node is listed with its report, a revoke makes its next mTLS
// heartbeat fail, the list shows it revoked, a new token enrolls it again,
// and a kernel-line token reaches a bare-metal MAC's iPXE script. No token
// is logged.
func TestAdminSocketRunningDaemon(t *testing.T) {
	logs := &testlog.Buffer{}
	d := start(t, loopbackConfig(t, logs))
	c := admin.NewClient(d.AdminSocket())
	defer c.CloseIdle()
	ctx := context.Background()
	if fi, err := os.Lstat(d.AdminSocket()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, %v; want mode 0600", fi, err)
	}

	const mac = "52:54:00:ad:00:01"
	tr, err := c.CreateToken(ctx, admin.TokenRequest{MAC: mac, TTL: "10m"})
	if err != nil {
		t.Fatalf("token over the admin socket of a running appliance: %v", err)
	}
	cl, id, resp := enrolltest.Enroll(t, d.APIURL(), d.CAPEM(), tr.Token, "00000000-0000-0000-0000-0000000000ad", mac)
	csr, _ := id.CSR()
	rep := api.Report{Swarm: api.SwarmState{State: "inactive"}, Docker: api.DockerState{Reachable: true}}
	if err := cl.Report(ctx, rep); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}

	var nodes []admin.Node
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if nodes, err = c.Nodes(ctx); err != nil {
			t.Fatal(err)
		}
		if len(nodes) == 1 && nodes[0].Swarm.State == "inactive" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes %+v: want %s with its report", nodes, resp.Node)
		}
	}
	if nodes[0].Name != resp.Node || !nodes[0].Revoked.IsZero() {
		t.Fatalf("listed %+v, want %s not revoked", nodes[0], resp.Node)
	}

	// Its report had no swarm node: the answer says there was nothing to
	// take out of the swarm (the daemon's Revoker is its agent API's
	// RevokeNode).
	if rv, err := c.Revoke(ctx, resp.Node); err != nil {
		t.Fatal(err)
	} else if rv.SwarmNote != "it never reported a swarm node ID: nothing to remove from the swarm" {
		t.Errorf("revoke's swarm note %q: want nothing to remove", rv.SwarmNote)
	}
	if err := cl.Report(ctx, rep); !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "certificate revoked") {
		t.Fatalf("heartbeat after revoke: %v, want refused (certificate revoked)", err)
	}
	if _, err := cl.Plan(ctx); !errors.Is(err, agent.ErrRefused) {
		t.Errorf("plan after revoke: %v, want refused", err)
	}
	if nodes, err = c.Nodes(ctx); err != nil || len(nodes) != 1 || nodes[0].Revoked.IsZero() {
		t.Errorf("nodes after revoke: %+v, %v", nodes, err)
	}
	// The spent token does not bring the revoked node back.
	if _, err := cl.Enroll(ctx, api.EnrollRequest{Token: tr.Token, BIOSUUID: "00000000-0000-0000-0000-0000000000ad", MACs: []string{mac}, CSR: csr}); err == nil {
		t.Error("the revoked node re-enrolled with its spent token")
	}
	// A new token enrolls it again, with the key it kept, and clears the
	// revocation.
	tr2, err := c.CreateToken(ctx, admin.TokenRequest{MAC: mac})
	if err != nil {
		t.Fatal(err)
	}
	resp2, err := cl.Enroll(ctx, api.EnrollRequest{Token: tr2.Token, BIOSUUID: "00000000-0000-0000-0000-0000000000ad", MACs: []string{mac}, CSR: csr})
	if err != nil || resp2.Node != resp.Node {
		t.Fatalf("re-enroll with a new token: %+v, %v; want node %s again", resp2, err, resp.Node)
	}
	if err := id.SaveCert(resp2.Certificate); err != nil {
		t.Fatal(err)
	}
	cl.CloseIdle()
	if err := cl.Report(ctx, rep); err != nil {
		t.Errorf("heartbeat after re-enrolling: %v", err)
	}
	if nodes, err = c.Nodes(ctx); err != nil || len(nodes) != 1 || !nodes[0].Revoked.IsZero() {
		t.Errorf("nodes after re-enrolling: %+v, %v; want it no longer revoked", nodes, err)
	}

	// A bare-metal MAC gets a kernel-line token: its iPXE script carries it.
	const bare = "52:54:00:ad:00:02"
	kl, err := c.CreateToken(ctx, admin.TokenRequest{MAC: bare, KernelLine: true})
	if err != nil {
		t.Fatalf("kernel-line token: %v", err)
	}
	if kl.MAC != bare || time.Until(kl.Expires) > 30*time.Minute || time.Until(kl.Expires) < 29*time.Minute {
		t.Errorf("kernel-line token response: mac %q expires %v; want %s, the appliance's 30 min", kl.MAC, kl.Expires, bare)
	}
	if script := get(t, d.HTTPBase()+"/boot/"+bare+".ipxe"); !strings.Contains(script, TokenArg+"="+kl.Token) {
		t.Errorf("the script of %s lacks its kernel-line token:\n%s", bare, script)
	}
	if l := logs.String(); strings.Contains(l, tr.Token) || strings.Contains(l, tr2.Token) || strings.Contains(l, kl.Token) {
		t.Error("the token is in the appliance's logs")
	} else if !strings.Contains(l, "part=admin") {
		t.Errorf("no admin log lines (capture broken?):\n%s", l)
	}
}

// TestAdminSocketLifecycle: a socket file left by a crashed run does not
// stop the appliance, Run serves the socket, and the socket is gone when
// Run returns.
func TestAdminSocketLifecycle(t *testing.T) {
	logs := &testlog.Buffer{}
	cfg := loopbackConfig(t, logs)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: admin.SocketPath(cfg.DataDir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	c := admin.NewClient(d.AdminSocket())
	if _, err := c.Nodes(ctx); err != nil {
		t.Fatalf("admin socket of a running appliance: %v", err)
	}
	c.CloseIdle()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Lstat(d.AdminSocket()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin socket left after shutdown: %v", err)
	}
	if _, err := c.Nodes(context.Background()); !errors.Is(err, admin.ErrNotRunning) {
		t.Errorf("after shutdown: %v, want ErrNotRunning", err)
	}
}

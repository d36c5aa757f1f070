package admin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// enrolledVM enrolls the VM name (put in the store with role) through
// the agent API with a token from the admin socket, and makes it report
// sw once.
func (e *env) enrolledVM(t *testing.T, name, role, mac string, sw api.SwarmState) *agent.Client {
	t.Helper()
	uuid := "00000000-0000-0000-0000-0000000000" + mac[len(mac)-2:]
	if err := e.st.Update(func(tx *store.Tx) error {
		return tx.PutVM(store.VM{Name: name, BIOSUUID: uuid, MAC: mac, Role: role})
	}); err != nil {
		t.Fatal(err)
	}
	tr, err := e.c.CreateToken(t.Context(), TokenRequest{VM: name})
	if err != nil {
		t.Fatal(err)
	}
	cl, _, resp := enrolltest.Enroll(t, e.url, e.api.CA.CertPEM, tr.Token, uuid, mac)
	if resp.Node != name {
		t.Fatalf("VM %s enrolled as node %s", name, resp.Node)
	}
	if err := cl.Report(t.Context(), api.Report{Swarm: sw}); err != nil {
		t.Fatal(err)
	}
	return cl
}

var (
	mgrSwarm = api.SwarmState{State: "active", ControlAvailable: true, NodeID: "m1", ClusterID: "c1", Role: api.RoleManager}
	wrkSwarm = func(id string) api.SwarmState {
		return api.SwarmState{State: "active", NodeID: id, ClusterID: "c1", Role: api.RoleWorker}
	}
)

// TestRevokeRemovesSwarmNode: a revoke over the socket waits for a
// manager agent to remove the node's swarm node and answers with what
// became of it: removed, or (the manager took it and went quiet) that it
// stays and how to remove it, within Ops.RevokeWait.
func TestRevokeRemovesSwarmNode(t *testing.T) {
	t.Parallel()
	e := serve(t, t.TempDir(), func(s *Server) { s.Ops.RevokeWait = 2 * time.Second })
	mgr := e.enrolledVM(t, "m1", api.RoleManager, "52:54:00:aa:01:01", mgrSwarm)
	e.enrolledVM(t, "w1", api.RoleWorker, "52:54:00:aa:01:02", wrkSwarm("sw1"))
	e.enrolledVM(t, "w2", api.RoleWorker, "52:54:00:aa:01:03", wrkSwarm("sw2"))

	got := revokeAsync(context.Background(), e.c, "w1")
	op := takeOp(t, mgr)
	if op.Do != api.OpRemoveForce || op.Node != "sw1" {
		t.Fatalf("manager handed %+v, want remove-force of sw1", op)
	}
	if err := mgr.Report(t.Context(), api.Report{Swarm: mgrSwarm, OpResults: []api.NodeOpResult{{ID: op.ID}}}); err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil || res.r.SwarmNote != "swarm node sw1 removed" {
		t.Fatalf("revoke w1: %+v, %v; want its swarm node removed", res.r, res.err)
	}

	// The manager takes w2's removal and never answers: the call returns
	// after RevokeWait, saying so.
	start := time.Now()
	got = revokeAsync(context.Background(), e.c, "w2")
	if op := takeOp(t, mgr); op.Node != "sw2" {
		t.Fatalf("manager handed %+v, want sw2", op)
	}
	res = <-got
	if res.err != nil || !strings.Contains(res.r.SwarmNote, "swarm node sw2 stays in the swarm (") ||
		!strings.Contains(res.r.SwarmNote, "has not answered") || !strings.Contains(res.r.SwarmNote, "docker node rm --force sw2") {
		t.Fatalf("revoke w2: %+v, %v; want sw2 staying, the manager not answering", res.r, res.err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("revoke w2 took %v: RevokeWait is 2 s", d)
	}
}

type revokeResult struct {
	r   *RevokeResponse
	err error
}

// revokeAsync revokes name over the socket; the answer comes on the
// channel.
func revokeAsync(ctx context.Context, c *Client, name string) <-chan revokeResult {
	ch := make(chan revokeResult, 1)
	go func() {
		r, err := c.Revoke(ctx, name)
		ch <- revokeResult{r, err}
	}()
	return ch
}

// takeOp plays the manager's agent: it heartbeats until it is handed an
// operation.
func takeOp(t *testing.T, mgr *agent.Client) api.NodeOp {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		a, err := mgr.ReportOps(t.Context(), api.Report{Swarm: mgrSwarm})
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Ops) > 0 {
			return a.Ops[0]
		}
	}
	t.Fatal("the manager was handed no operation within 10 s")
	return api.NodeOp{}
}

// TestRevokeOutlivesTheCaller: a caller who hangs up does not cut the
// swarm node's removal short (the manager's answer still lands in the
// log), and a server that stops does (its answer comes at once, not after
// RevokeWait).
func TestRevokeOutlivesTheCaller(t *testing.T) {
	t.Parallel()
	e := serve(t, t.TempDir())
	mgr := e.enrolledVM(t, "m1", api.RoleManager, "52:54:00:aa:02:01", mgrSwarm)
	e.enrolledVM(t, "w1", api.RoleWorker, "52:54:00:aa:02:02", wrkSwarm("sw1"))
	e.enrolledVM(t, "w2", api.RoleWorker, "52:54:00:aa:02:03", wrkSwarm("sw2"))

	ctx, hangUp := context.WithCancel(context.Background())
	got := revokeAsync(ctx, e.c, "w1")
	op := takeOp(t, mgr)
	hangUp()
	if res := <-got; res.err == nil {
		t.Fatalf("revoke after the caller hung up: %+v, want the caller's error", res.r)
	}
	if err := mgr.Report(t.Context(), api.Report{Swarm: mgrSwarm, OpResults: []api.NodeOpResult{{ID: op.ID}}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(e.logs.String(), "swarm node sw1 removed"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the removal of sw1 did not go on after the caller hung up:\n%s", e.logs.String())
		}
	}

	start := time.Now()
	got = revokeAsync(context.Background(), e.c, "w2")
	takeOp(t, mgr)
	e.stop()
	res := <-got
	if res.err != nil || !strings.Contains(res.r.SwarmNote, "swarm node sw2 stays in the swarm (") || !strings.Contains(res.r.SwarmNote, "context canceled") {
		t.Fatalf("revoke while the server stops: %+v, %v; want sw2 staying, cancelled", res.r, res.err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("revoke while the server stops took %v; want it cut short, not the 20 s RevokeWait", d)
	}
}

// The wait for a manager must end well before the client gives up on the
// call (and the server's write deadline), or the note never arrives.
func TestRevokeWaitFitsTheCall(t *testing.T) {
	t.Parallel()
	if DefaultRevokeWait+5*time.Second > clientTimeout || DefaultRevokeWait+5*time.Second > defaultWriteTimeout {
		t.Errorf("DefaultRevokeWait %v leaves less than 5 s of the client's %v / the server's write timeout %v",
			DefaultRevokeWait, clientTimeout, defaultWriteTimeout)
	}
}

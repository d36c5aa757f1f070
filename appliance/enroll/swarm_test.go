package enroll

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// A managed manager's push carries the node list; CurrentSwarm answers it
// with who pushed it, and neither the store nor the log ever holds the
// join tokens that came with it.
func TestCurrentSwarmPushedNodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.srv.CurrentSwarm(ctx); !errors.Is(err, swarm.ErrNoSwarm) {
		t.Fatalf("before any push: %v, want ErrNoSwarm", err)
	}
	h.putVM("lab-m1", "uuid-m1", "52:54:00:00:00:01", api.RoleManager)
	m1 := newNode(t)
	code, resp := h.enroll(m1, h.token("lab-m1", time.Hour, time.Now()), "uuid-m1", "52:54:00:00:00:01")
	if code != http.StatusOK {
		t.Fatalf("enroll: %d", code)
	}
	m1.setCert(t, resp.Certificate)

	const workerTok, managerTok = "SWMTKN-1-nodes-worker-secret", "SWMTKN-1-nodes-manager-secret"
	nodes := []api.SwarmNode{
		{ID: "n1", Hostname: "lab-m1", Role: api.RoleManager, State: api.NodeReady, Availability: "active", Addr: "10.77.0.11", Leader: true, EngineVersion: "20.10.24+dfsg1"},
		{ID: "n2", Hostname: "lab-w1", Role: api.RoleWorker, State: api.NodeReady, Availability: "active", Addr: "10.77.0.12", EngineVersion: "20.10.24+dfsg1"},
		{ID: "n3", Hostname: "lab-w2", Role: api.RoleWorker, State: api.NodeDown, Availability: "active", Addr: "10.77.0.13", EngineVersion: "20.10.24+dfsg1"},
	}
	push := &api.ManagerPush{ClusterID: "c1", Worker: workerTok, Manager: managerTok, Managers: []string{"10.77.0.11:2377"},
		NodeIDs: []string{"n1", "n2", "n3"}, Nodes: nodes}
	active := api.SwarmState{State: "active", ControlAvailable: true, NodeID: "n1", ClusterID: "c1", Role: api.RoleManager}

	// A push whose node list the API refuses is refused whole: no tokens
	// taken from it.
	bad := *push
	bad.Nodes = []api.SwarmNode{{ID: "n1", Role: "overlord", State: api.NodeReady}}
	if code := h.report(m1, api.Report{Swarm: active, JoinTokens: &bad}); code != http.StatusBadRequest {
		t.Errorf("push with a bad node: %d, want 400", code)
	}
	if _, err := h.srv.CurrentSwarm(ctx); !errors.Is(err, swarm.ErrNoSwarm) {
		t.Errorf("after a refused push: %v, want ErrNoSwarm", err)
	}

	if code := h.report(m1, api.Report{Swarm: active, JoinTokens: push}); code != http.StatusNoContent {
		t.Fatalf("report with push: %d", code)
	}
	info, err := h.srv.CurrentSwarm(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Nodes, nodes) || info.ClusterID != "c1" || info.Ready() != 2 {
		t.Errorf("node list: %+v (%d ready), want the pushed one (2 ready)", info.Nodes, info.Ready())
	}
	if want := "lab-m1 (its agent, from its Docker API)"; info.From != want {
		t.Errorf("From = %q, want %q", info.From, want)
	}
	// The answer is a copy: the caller cannot edit what the server holds.
	info.Nodes[0].State = api.NodeDown
	if again, _ := h.srv.CurrentSwarm(ctx); again.Nodes[0].State != api.NodeReady {
		t.Error("CurrentSwarm handed out the server's own slice")
	}

	// Each manager heartbeat pushes; the log says "updated" at info level
	// only when the swarm changed (here: n3 comes back ready).
	updated := func() int {
		return strings.Count(h.logs.String(), `level=INFO msg="swarm join tokens and members updated`)
	}
	if code := h.report(m1, api.Report{Swarm: active, JoinTokens: push}); code != http.StatusNoContent || updated() != 1 {
		t.Errorf("the same push again: %d, %d info lines, want 1", code, updated())
	}
	back := *push
	back.Nodes = slices.Clone(nodes)
	back.Nodes[2].State = api.NodeReady
	if code := h.report(m1, api.Report{Swarm: active, JoinTokens: &back}); code != http.StatusNoContent || updated() != 2 {
		t.Errorf("a push where n3 is ready again: %d, %d info lines, want 2", code, updated())
	}

	if err := h.srv.flush(); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	h.st.View(func(tx *store.Tx) error {
		if n, err := tx.Node("lab-m1"); err == nil {
			stored = n.LastReport
		}
		return nil
	})
	db, err := os.ReadFile(h.st.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) == 0 || !bytes.Contains(stored, []byte(`"state":"active"`)) {
		t.Errorf("stored report missing: %s", stored)
	}
	for _, b := range [][]byte{stored, db, []byte(h.logs.String())} {
		if bytes.Contains(b, []byte("SWMTKN")) {
			t.Fatal("a join token reached the store or the log")
		}
	}
}

// sourceFunc is a swarm.Source from a function (an existing swarm's
// manager, as a Remote would answer).
type sourceFunc func(context.Context) (swarm.Info, error)

func (f sourceFunc) Swarm(ctx context.Context) (swarm.Info, error) { return f(ctx) }

// With an existing swarm's manager configured, CurrentSwarm is its answer,
// never a push.
func TestCurrentSwarmRemote(t *testing.T) {
	t.Parallel()
	remote := swarm.Info{ClusterID: "site", Worker: "SWMTKN-1-w", From: "tcp://10.77.0.2:2376",
		Nodes: []api.SwarmNode{{ID: "r1", Hostname: "site-m1", Role: api.RoleManager, State: api.NodeReady}}}
	srv := &Server{Swarm: sourceFunc(func(context.Context) (swarm.Info, error) { return remote, nil })}
	srv.pushed.Set(swarm.Info{ClusterID: "pushed", Worker: "SWMTKN-1-p", From: "m1 (its agent, from its Docker API)"})
	info, err := srv.CurrentSwarm(context.Background())
	if err != nil || info.From != remote.From || len(info.Nodes) != 1 || info.Nodes[0].Hostname != "site-m1" {
		t.Fatalf("CurrentSwarm = %v %+v, %v; want the remote's answer", info, info.Nodes, err)
	}
	down := errors.New("swarm manager tcp://10.77.0.2:2376: inspect: connection refused")
	srv.Swarm = sourceFunc(func(context.Context) (swarm.Info, error) { return swarm.Info{}, down })
	if _, err := srv.CurrentSwarm(context.Background()); !errors.Is(err, down) || !strings.Contains(err.Error(), "10.77.0.2") {
		t.Errorf("unreachable manager: %v, want its error", err)
	}
}

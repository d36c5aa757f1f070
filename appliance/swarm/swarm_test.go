package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

func TestInfoRedacts(t *testing.T) {
	t.Parallel()
	i := Info{ClusterID: "c1", Worker: "SWMTKN-1-worker-secret", Manager: "SWMTKN-1-manager-secret", Managers: []string{"10.77.0.2:2377"},
		Nodes: []api.SwarmNode{{ID: "n1", Hostname: "lab-m1", Role: "manager", State: "ready"}}, From: "lab-m1 (its agent, from its Docker API)"}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("swarm", "info", i)
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("swarm", "info", i, "ptr", &i)
	for _, s := range []string{fmt.Sprint(i), fmt.Sprintf("%v %+v %s", i, i, &i), sb.String()} {
		if strings.Contains(s, "SWMTKN") || !strings.Contains(s, "c1") || !strings.Contains(s, "lab-m1 (its agent") || !strings.Contains(s, "1 nodes") && !strings.Contains(s, "nodes=1") && !strings.Contains(s, `"nodes":1`) {
			t.Errorf("printed form leaks, or loses the cluster, the source or the node count: %q", s)
		}
	}
	if i.Token("manager") != i.Manager || i.Token("worker") != i.Worker {
		t.Error("Token picks the wrong role")
	}
	if _, known := i.Member("x"); known {
		t.Error("nil member list reported as known")
	}
}

func TestPushed(t *testing.T) {
	t.Parallel()
	var p Pushed
	if _, err := p.Swarm(context.Background()); !errors.Is(err, ErrNoSwarm) {
		t.Fatalf("empty: %v", err)
	}
	p.Set(Info{Worker: "w", NodeIDs: []string{"a"}})
	i, err := p.Swarm(context.Background())
	if m, known := i.Member("a"); err != nil || !m || !known {
		t.Fatalf("after Set: %+v %v", i, err)
	}
	c := i.Clone()
	c.NodeIDs[0] = "b"
	if m, _ := i.Member("a"); !m {
		t.Error("Clone shares the member list")
	}
}

// fakeManager is a Docker API on a unix socket answering swarm inspect,
// node list and task list the way dockerd 20.10 does (API 1.41); tasks ""
// makes the task list fail as a manager without quorum does.
func fakeManager(t *testing.T, calls *atomic.Int32, slow time.Duration, tasks string) string {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Write([]byte("OK"))
	})
	mux.HandleFunc("/v1.41/swarm", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(slow)
		json.NewEncoder(w).Encode(map[string]any{"ID": "cluster1", "JoinTokens": map[string]string{"Worker": "SWMTKN-w", "Manager": "SWMTKN-m"}})
	})
	mux.HandleFunc("/v1.41/nodes", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]map[string]any{
			{"ID": "n1", "ManagerStatus": map[string]any{"Addr": "10.77.0.2:2377", "Leader": true},
				"Spec":        map[string]any{"Role": "manager", "Availability": "active"},
				"Description": map[string]any{"Hostname": "site-m1", "Engine": map[string]any{"EngineVersion": "20.10.24+dfsg1"}},
				"Status":      map[string]any{"State": "ready", "Addr": "10.77.0.2"}},
			{"ID": "n2", "Spec": map[string]any{"Role": "worker", "Availability": "drain"},
				"Description": map[string]any{"Hostname": "site-w1\x1b[2J"}, "Status": map[string]any{"State": "down", "Addr": "10.77.0.3"}},
		})
	})
	mux.HandleFunc("/v1.41/tasks", func(w http.ResponseWriter, r *http.Request) {
		if tasks == "" {
			http.Error(w, `{"message":"rpc error: code = Unknown desc = The swarm does not have a leader."}`, http.StatusInternalServerError)
			return
		}
		w.Write([]byte(tasks))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

// siteTasks is GET /tasks while n2 drains: one task still stopping, one
// stopped, its replacement starting on n1, one not yet scheduled, one on
// a node no longer listed.
const siteTasks = `[
 {"ID":"t1","NodeID":"n2","DesiredState":"shutdown","Status":{"State":"running"}},
 {"ID":"t2","NodeID":"n2","DesiredState":"shutdown","Status":{"State":"shutdown"}},
 {"ID":"t3","NodeID":"n1","DesiredState":"running","Status":{"State":"starting"}},
 {"ID":"t4","NodeID":"n1","DesiredState":"running","Status":{"State":"running"}},
 {"ID":"t5","NodeID":"n1","DesiredState":"shutdown","Status":{"State":"complete"}},
 {"ID":"t6","DesiredState":"running","Status":{"State":"pending"}},
 {"ID":"t7","NodeID":"gone","DesiredState":"running","Status":{"State":"running"}}
]`

func TestRemote(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r, err := NewRemote(fakeManager(t, &calls, 200*time.Millisecond, siteTasks), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	r.TTL = 50 * time.Millisecond
	i, err := r.Swarm(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if i.ClusterID != "cluster1" || i.Worker != "SWMTKN-w" || len(i.Managers) != 1 || i.Managers[0] != "10.77.0.2:2377" || len(i.NodeIDs) != 2 {
		t.Fatalf("read %+v", i)
	}
	want := []api.SwarmNode{
		{ID: "n1", Hostname: "site-m1", Role: "manager", State: "ready", Availability: "active", Addr: "10.77.0.2", Leader: true, EngineVersion: "20.10.24+dfsg1", Tasks: 2, TasksKnown: true},
		{ID: "n2", Hostname: "site-w1[2J", Role: "worker", State: "down", Availability: "drain", Addr: "10.77.0.3", Tasks: 1, TasksKnown: true}, // escape dropped
	}
	if !slices.Equal(i.Nodes, want) {
		t.Errorf("nodes:\n got %+v\nwant %+v", i.Nodes, want)
	}
	if !strings.HasPrefix(i.From, "unix://") || !strings.HasSuffix(i.From, "d.sock") || i.Ready() != 1 {
		t.Errorf("from %q, %d ready; want the Docker host URL and 1", i.From, i.Ready())
	}
	time.Sleep(60 * time.Millisecond) // expired: one caller refreshes (200 ms)
	done := make(chan struct{})
	go func() { r.Swarm(context.Background()); close(done) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if _, err := r.Swarm(context.Background()); err != nil || time.Since(start) > 100*time.Millisecond {
		t.Errorf("second caller waited %v for the refresh (err %v); want the previous answer at once", time.Since(start), err)
	}
	<-done
	if got := calls.Load(); got != 2 {
		t.Errorf("%d inspect calls, want 2 (one per refresh)", got)
	}
}

// A manager whose task list fails still gives its node list, with the
// counts unknown rather than 0 (a roll then does not wait on them).
func TestRemoteTasksUnknown(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r, err := NewRemote(fakeManager(t, &calls, 0, ""), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	i, err := r.Swarm(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(i.Nodes) != 2 {
		t.Fatalf("%d nodes, want 2", len(i.Nodes))
	}
	for _, n := range i.Nodes {
		if n.TasksKnown || n.Tasks != 0 {
			t.Errorf("node %s: tasks %d known %v, want unknown", n.ID, n.Tasks, n.TasksKnown)
		}
	}
}

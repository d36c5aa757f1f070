package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// fakeDocker is a Docker API 1.41 on a unix socket with a scripted swarm
// state, counting the calls that change it.
type fakeDocker struct {
	mu                  sync.Mutex
	state               string // LocalNodeState
	control             bool
	joins, inits, leave int
	joinTimesOut        bool                 // join answers dockerd's timeout error, then turns active
	nodes               string               // GET /nodes answer (JSON); "" → []
	extra               func(*http.ServeMux) // more endpoints
}

func (f *fakeDocker) serve(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Write([]byte("OK"))
	})
	mux.HandleFunc("/v1.41/info", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"ServerVersion": "20.10.24", "DockerRootDir": "/var/lib/docker", "Driver": "overlay2",
			"Swarm": map[string]any{"NodeID": "n1", "LocalNodeState": f.state, "ControlAvailable": f.control}})
	})
	mux.HandleFunc("/v1.41/swarm/join", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.joins++
		if f.joinTimesOut {
			f.state = "pending"
			go func() {
				time.Sleep(300 * time.Millisecond)
				f.mu.Lock()
				f.state = "active"
				f.mu.Unlock()
			}()
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"message": `Timeout was reached before node joined. The attempt to join the swarm will continue in the background. Use the "docker info" command to see the current swarm status of your node.`})
			return
		}
		f.state = "active"
	})
	mux.HandleFunc("/v1.41/swarm/init", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.inits++
		f.state, f.control = "active", true
		json.NewEncoder(w).Encode("n1")
	})
	mux.HandleFunc("/v1.41/swarm/leave", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.leave++
		f.state = "inactive"
	})
	mux.HandleFunc("/v1.41/swarm", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"ID": "cluster1", "JoinTokens": map[string]string{"Worker": "SWMTKN-1-w", "Manager": "SWMTKN-1-m"}})
	})
	mux.HandleFunc("/v1.41/nodes", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.nodes == "" {
			w.Write([]byte("[]"))
			return
		}
		w.Write([]byte(f.nodes))
	})
	if f.extra != nil {
		f.extra(mux)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

func TestApplyIdempotentAndPolls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	join := api.Plan{Action: api.ActionJoin, Role: "worker", Managers: []string{"10.77.0.2:2377"}, JoinToken: "SWMTKN-1-x"}

	f := &fakeDocker{state: "active"}
	d, err := NewDocker(f.serve(t))
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := d.Apply(ctx, join); changed || err != nil || f.joins != 0 {
		t.Errorf("join while active: changed %v, err %v, %d join calls; want nothing", changed, err, f.joins)
	}
	if changed, err := d.Apply(ctx, api.Plan{Action: api.ActionInit}); changed || err != nil || f.inits != 0 {
		t.Errorf("init while active: changed %v, err %v, %d init calls", changed, err, f.inits)
	}

	slow := &fakeDocker{state: "inactive", joinTimesOut: true}
	d2, _ := NewDocker(slow.serve(t))
	d2.PollFor = 5 * time.Second
	if changed, err := d2.Apply(ctx, join); !changed || err != nil {
		t.Fatalf("join that timed out: changed %v, err %v; want it to poll docker info until active", changed, err)
	}
	if slow.joins != 1 {
		t.Errorf("%d join calls, want 1", slow.joins)
	}

	gone := &fakeDocker{state: "active"}
	d3, _ := NewDocker(gone.serve(t))
	rejoin := join
	rejoin.Action = api.ActionLeaveRejoin
	if changed, err := d3.Apply(ctx, rejoin); !changed || err != nil || gone.leave != 1 || gone.joins != 1 {
		t.Errorf("leave-rejoin: changed %v, err %v, leave %d, join %d", changed, err, gone.leave, gone.joins)
	}
	if _, err := d3.Apply(ctx, api.Plan{Action: "reboot"}); err == nil {
		t.Error("unknown action accepted")
	}
}

// dockerNodes is GET /nodes from dockerd 20.10 for a three-node swarm
// (trimmed to the fields Push reads, plus some it ignores), with a fourth
// node in a state this agent does not know and a fifth whose hostname
// carries a terminal escape.
const dockerNodes = `[
 {"ID":"m1id","Version":{"Index":9},"Spec":{"Labels":{},"Role":"manager","Availability":"active"},
  "Description":{"Hostname":"lab-m1","Platform":{"Architecture":"x86_64","OS":"linux"},"Engine":{"EngineVersion":"20.10.24+dfsg1"}},
  "Status":{"State":"ready","Addr":"10.77.0.11"},"ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"10.77.0.11:2377"}},
 {"ID":"w1id","Spec":{"Role":"worker","Availability":"active"},"Description":{"Hostname":"lab-w1","Engine":{"EngineVersion":"20.10.24+dfsg1"}},
  "Status":{"State":"ready","Addr":"10.77.0.12"}},
 {"ID":"w2id","Spec":{"Role":"worker","Availability":"drain"},"Description":{"Hostname":"lab-w2"},"Status":{"State":"down","Addr":"10.77.0.13"}},
 {"ID":"w3id","Spec":{"Role":"worker"},"Status":{"State":"hibernating"}},
 {"ID":"w4id","Spec":{"Role":"worker","Availability":"active"},"Description":{"Hostname":"evil\u001b[2J"},"Status":{"State":"ready","Addr":"10.77.0.14"}}
]`

func TestPushNodes(t *testing.T) {
	t.Parallel()
	f := &fakeDocker{state: "active", control: true, nodes: dockerNodes}
	p := f.push(t)
	want := []api.SwarmNode{
		{ID: "m1id", Hostname: "lab-m1", Role: "manager", State: "ready", Availability: "active", Addr: "10.77.0.11", Leader: true, EngineVersion: "20.10.24+dfsg1"},
		{ID: "w1id", Hostname: "lab-w1", Role: "worker", State: "ready", Availability: "active", Addr: "10.77.0.12", EngineVersion: "20.10.24+dfsg1"},
		{ID: "w2id", Hostname: "lab-w2", Role: "worker", State: "down", Availability: "drain", Addr: "10.77.0.13"},
		{ID: "w3id", Role: "worker", State: "unknown"},
		{ID: "w4id", Role: "worker", State: "ready"},
	}
	if len(p.Nodes) != len(want) {
		t.Fatalf("pushed %d nodes, want %d: %+v", len(p.Nodes), len(want), p.Nodes)
	}
	for i := range want {
		if p.Nodes[i] != want[i] {
			t.Errorf("node %d:\n got %+v\nwant %+v", i, p.Nodes[i], want[i])
		}
	}
	if len(p.NodeIDs) != 5 || len(p.Managers) != 1 || p.Managers[0] != "10.77.0.11:2377" || p.Worker != "SWMTKN-1-w" || p.ClusterID != "cluster1" {
		t.Errorf("push: %+v", p)
	}
	// What the agent sends, the appliance's API takes.
	rep := api.Report{JoinTokens: p}
	if err := rep.Validate(); err != nil {
		t.Errorf("pushed node list refused by the API: %v", err)
	}
}

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
	joinTimesOut        bool // join answers dockerd's timeout error, then turns active
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

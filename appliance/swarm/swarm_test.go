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
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestInfoRedacts(t *testing.T) {
	t.Parallel()
	i := Info{ClusterID: "c1", Worker: "SWMTKN-1-worker-secret", Manager: "SWMTKN-1-manager-secret", Managers: []string{"10.77.0.2:2377"}}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("swarm", "info", i)
	for _, s := range []string{fmt.Sprint(i), fmt.Sprintf("%v %+v", i, i), sb.String()} {
		if strings.Contains(s, "SWMTKN") || !strings.Contains(s, "c1") {
			t.Errorf("printed form leaks or loses the cluster: %q", s)
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
}

// fakeManager is a Docker API on a unix socket answering swarm inspect
// and node list the way dockerd 20.10 does (API 1.41).
func fakeManager(t *testing.T, calls *atomic.Int32, slow time.Duration) string {
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
			{"ID": "n1", "ManagerStatus": map[string]any{"Addr": "10.77.0.2:2377", "Leader": true}},
			{"ID": "n2"},
		})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

func TestRemote(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r, err := NewRemote(fakeManager(t, &calls, 200*time.Millisecond), "", "", "")
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

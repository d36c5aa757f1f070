package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// nodeManager is a Docker API (1.41) that knows node w1 at version 7 and
// records what is done to it.
type nodeManager struct {
	mu           sync.Mutex
	availability string
	labels       map[string]string
	version      string
	removed      []string
}

func (m *nodeManager) serve(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	notFound := func(w http.ResponseWriter, id string) {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"message": "node " + id + " not found"})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Api-Version", "1.41") })
	mux.HandleFunc("GET /v1.41/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if r.PathValue("id") != "w1" {
			notFound(w, r.PathValue("id"))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ID": "w1", "Version": map[string]int{"Index": 7},
			"Spec": map[string]any{"Role": "worker", "Availability": m.availability, "Labels": m.labels}})
	})
	mux.HandleFunc("POST /v1.41/nodes/{id}/update", func(w http.ResponseWriter, r *http.Request) {
		var spec struct {
			Role, Availability string
			Labels             map[string]string
		}
		json.NewDecoder(r.Body).Decode(&spec)
		m.mu.Lock()
		defer m.mu.Unlock()
		if spec.Role != "worker" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		m.availability, m.labels, m.version = spec.Availability, spec.Labels, r.URL.Query().Get("version")
	})
	mux.HandleFunc("DELETE /v1.41/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if r.PathValue("id") != "w1" {
			notFound(w, r.PathValue("id"))
			return
		}
		if r.URL.Query().Get("force") == "" && m.availability != "down" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"message": "rpc error: node w1 is not down and can't be removed"})
			return
		}
		m.removed = append(m.removed, "w1")
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

// Remote drains and activates by sending the node's spec back whole at
// the version read, removes with or without force, passes refusals on
// naming the manager, and wraps ErrNoNode for a node it does not know.
func TestRemoteOperator(t *testing.T) {
	t.Parallel()
	m := &nodeManager{availability: "active", labels: map[string]string{"zone": "a"}}
	r, err := NewRemote(m.serve(t), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	var op Operator = r
	ctx := context.Background()
	// A refused change keeps the cached swarm answer; a change drops it
	// (the next Swarm call shows the node's new availability).
	r.cached = Info{ClusterID: "c", At: time.Now()}
	if err := op.Remove(ctx, "gone", true); err == nil || r.cached.At.IsZero() {
		t.Errorf("refused remove: %v, cache dropped: %v", err, r.cached.At.IsZero())
	}
	if err := op.SetAvailability(ctx, "w1", api.AvailabilityDrain); err != nil {
		t.Fatal(err)
	}
	if !r.cached.At.IsZero() {
		t.Error("the cached swarm answer survived a drain")
	}
	if m.availability != "drain" || m.version != "7" || m.labels["zone"] != "a" {
		t.Errorf("after drain: availability %q at version %q, labels %v", m.availability, m.version, m.labels)
	}
	if err := op.SetAvailability(ctx, "w1", api.AvailabilityActive); err != nil || m.availability != "active" {
		t.Errorf("activate: %v, availability %q", err, m.availability)
	}
	if err := op.SetAvailability(ctx, "w1", api.AvailabilityPause); err == nil {
		t.Error("pause accepted")
	}
	err = op.Remove(ctx, "w1", false)
	if err == nil || !strings.Contains(err.Error(), "is not down") || !strings.Contains(err.Error(), "d.sock") || errors.Is(err, ErrNoNode) {
		t.Errorf("remove of a live node: %v; want the manager's refusal naming it", err)
	}
	if err := op.Remove(ctx, "w1", true); err != nil || len(m.removed) != 1 {
		t.Errorf("remove --force: %v, removed %v", err, m.removed)
	}
	if err := op.SetAvailability(ctx, "gone", api.AvailabilityDrain); !errors.Is(err, ErrNoNode) {
		t.Errorf("drain of an unknown node: %v, want ErrNoNode", err)
	}
	if err := op.Remove(ctx, "gone", true); !errors.Is(err, ErrNoNode) {
		t.Errorf("remove of an unknown node: %v, want ErrNoNode", err)
	}
	if err := op.Remove(ctx, "../swarm", true); err == nil || !strings.Contains(err.Error(), "only letters") {
		t.Errorf("a node ID with a path: %v", err)
	}
}

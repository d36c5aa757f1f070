package agent

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// dockerTasks is GET /tasks from dockerd 20.10 (trimmed) while w1 drains:
// its web task was told to shut down and is still stopping, its db task
// has stopped, and their replacements are starting on w2 and m1; a task
// not yet scheduled has no node.
const dockerTasks = `[
 {"ID":"t1","ServiceID":"web","NodeID":"w1id","DesiredState":"shutdown","Status":{"State":"running"}},
 {"ID":"t2","ServiceID":"db","NodeID":"w1id","DesiredState":"shutdown","Status":{"State":"shutdown"}},
 {"ID":"t3","ServiceID":"web","NodeID":"w1id","DesiredState":"shutdown","Status":{"State":"complete"}},
 {"ID":"t4","ServiceID":"web","NodeID":"w2id","DesiredState":"running","Status":{"State":"starting"}},
 {"ID":"t5","ServiceID":"db","NodeID":"m1id","DesiredState":"running","Status":{"State":"preparing"}},
 {"ID":"t6","ServiceID":"db","NodeID":"m1id","DesiredState":"running","Status":{"State":"running"}},
 {"ID":"t7","ServiceID":"web","NodeID":"w2id","DesiredState":"shutdown","Status":{"State":"failed"}},
 {"ID":"t8","ServiceID":"web","NodeID":"w2id","DesiredState":"shutdown","Status":{"State":"rejected"}},
 {"ID":"t9","ServiceID":"web","DesiredState":"running","Status":{"State":"pending"}},
 {"ID":"t10","ServiceID":"web","NodeID":"gone","DesiredState":"running","Status":{"State":"running"}}
]`

// Push counts each node's tasks still there (running or stopping, not
// stopped) with one GET /tasks, and marks the counts known; a node without
// tasks is known 0, not unknown.
func TestPushTaskCounts(t *testing.T) {
	t.Parallel()
	var taskCalls atomic.Int32
	f := &fakeDocker{state: "active", control: true, nodes: dockerNodes}
	f.extra = func(mux *http.ServeMux) {
		mux.HandleFunc("/v1.41/tasks", func(w http.ResponseWriter, r *http.Request) {
			taskCalls.Add(1)
			w.Write([]byte(dockerTasks))
		})
	}
	p := f.push(t)
	want := map[string]int{"m1id": 2, "w1id": 1, "w2id": 1, "w3id": 0, "w4id": 0}
	for _, n := range p.Nodes {
		if !n.TasksKnown || n.Tasks != want[n.ID] {
			t.Errorf("node %s: tasks %d known %v, want %d known", n.ID, n.Tasks, n.TasksKnown, want[n.ID])
		}
	}
	if len(p.Nodes) != len(want) {
		t.Errorf("pushed %d nodes, want %d", len(p.Nodes), len(want))
	}
	if c := taskCalls.Load(); c != 1 {
		t.Errorf("%d GET /tasks for one push of %d nodes, want 1", c, len(p.Nodes))
	}
	if err := (&api.Report{JoinTokens: p}).Validate(); err != nil {
		t.Errorf("pushed counts refused by the API: %v", err)
	}
}

// A dockerd whose task list fails (here: no such endpoint) still gets its
// node list pushed, with the counts unknown rather than 0.
func TestPushTasksUnknown(t *testing.T) {
	t.Parallel()
	f := &fakeDocker{state: "active", control: true, nodes: dockerNodes}
	f.extra = func(mux *http.ServeMux) {
		mux.HandleFunc("/v1.41/tasks", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"message":"rpc error: code = Unavailable"}`, http.StatusServiceUnavailable)
		})
	}
	p := f.push(t)
	if len(p.Nodes) != 5 {
		t.Fatalf("pushed %d nodes, want 5", len(p.Nodes))
	}
	for _, n := range p.Nodes {
		if n.TasksKnown || n.Tasks != 0 {
			t.Errorf("node %s: tasks %d known %v, want unknown", n.ID, n.Tasks, n.TasksKnown)
		}
	}
}

// push is what an agent on f's dockerd pushes as a manager.
func (f *fakeDocker) push(t *testing.T) *api.ManagerPush {
	t.Helper()
	d, err := NewDocker(f.serve(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := d.Push(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

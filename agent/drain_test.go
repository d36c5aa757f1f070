package agent

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// drainSwarm is a manager's dockerd (dockerNodes: w2id drained) whose
// task list is what *tasks holds: n tasks still on w2id, and two running
// on the active m1id (those never make the agent report sooner).
func drainSwarm(t *testing.T, onW2 *atomic.Int32) *fakeDocker {
	f := &fakeDocker{state: "active", control: true, nodes: dockerNodes}
	f.extra = func(mux *http.ServeMux) {
		mux.HandleFunc("/v1.41/tasks", func(w http.ResponseWriter, r *http.Request) {
			list := `{"ID":"m1","NodeID":"m1id","Status":{"State":"running"}},{"ID":"m2","NodeID":"m1id","Status":{"State":"running"}}`
			for i := range onW2.Load() {
				list += `,{"ID":"w` + string(rune('a'+i)) + `","NodeID":"w2id","DesiredState":"shutdown","Status":{"State":"running"}}`
			}
			w.Write([]byte("[" + list + "]"))
		})
	}
	return f
}

// w2Tasks is w2id's count in a report, -1 when it has none.
func w2Tasks(r api.Report) int {
	if r.JoinTokens == nil {
		return -1
	}
	for _, n := range r.JoinTokens.Nodes {
		if n.ID == "w2id" && n.TasksKnown {
			return n.Tasks
		}
	}
	return -1
}

// While the node list has a drained node with tasks, the manager's agent
// reports every drainEvery (no heartbeat runs here), so the count going
// 2 → 0 reaches the appliance at once; then the reports stop.
func TestDrainReportsUntilTasksGone(t *testing.T) {
	t.Parallel()
	var onW2 atomic.Int32
	onW2.Store(2)
	app := &fakeAppliance{}
	a := testAgent(t, app.start(t), drainSwarm(t, &onW2).serve(t))
	a.drainEvery = 100 * time.Millisecond
	runLoop(t, a.drainLoop)
	if err := a.report(context.Background()); err != nil { // the heartbeat's
		t.Fatal(err)
	}
	if got := w2Tasks(<-app.got); got != 2 {
		t.Fatalf("first report: w2id has %d tasks, want 2", got)
	}
	select {
	case r := <-app.got:
		if got := w2Tasks(r); got != 2 {
			t.Fatalf("second report: w2id has %d tasks, want 2", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no report within 2 s while the drained w2id still has 2 tasks")
	}
	onW2.Store(0)
	start := time.Now()
	for {
		select {
		case r := <-app.got:
			if w2Tasks(r) != 0 {
				continue
			}
		case <-time.After(2 * time.Second):
			t.Fatal("w2id's 0 tasks not reported within 2 s of its tasks leaving")
		}
		break
	}
	t.Logf("0 tasks reported %v after they left", time.Since(start).Round(time.Millisecond))
	select {
	case r := <-app.got:
		t.Errorf("a report (w2id tasks %d) after the drained node's tasks were gone", w2Tasks(r))
	case <-time.After(5 * a.drainEvery):
	}
}

// Nothing drained with tasks (w2id drained and empty, m1id busy but
// active): no reports besides the heartbeat's.
func TestDrainNoExtraReports(t *testing.T) {
	t.Parallel()
	var onW2 atomic.Int32
	app := &fakeAppliance{}
	a := testAgent(t, app.start(t), drainSwarm(t, &onW2).serve(t))
	a.drainEvery = 50 * time.Millisecond
	runLoop(t, a.drainLoop)
	if err := a.report(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w2Tasks(<-app.got); got != 0 {
		t.Fatalf("w2id has %d tasks, want 0", got)
	}
	select {
	case <-app.got:
		t.Error("an extra report with no drained node holding tasks")
	case <-time.After(10 * a.drainEvery):
	}
}

// The reports stop at the cap (tasks that never stop), and when the node
// stops being a manager (its report has no node list).
func TestDrainReportsBounded(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		stop func(*Agent, *fakeDocker)
	}{
		{"cap", func(a *Agent, f *fakeDocker) { a.drainCap = 300 * time.Millisecond }},
		{"not manager", func(a *Agent, f *fakeDocker) { f.mu.Lock(); f.control = false; f.mu.Unlock() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var onW2 atomic.Int32
			onW2.Store(2)
			app := &fakeAppliance{}
			f := drainSwarm(t, &onW2)
			a := testAgent(t, app.start(t), f.serve(t))
			a.drainEvery = 50 * time.Millisecond
			c.stop(a, f)
			runLoop(t, a.drainLoop)
			if err := a.report(context.Background()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			app.mu.Lock()
			n := len(app.reports)
			app.mu.Unlock()
			time.Sleep(10 * a.drainEvery)
			app.mu.Lock()
			m := len(app.reports)
			app.mu.Unlock()
			if m != n || n > 300/50+2 {
				t.Errorf("%d reports in 1 s, %d more in the next 0.5 s; want at most %d, then none", n, m-n, 300/50+2)
			}
			if c.name == "cap" && n < 3 {
				t.Errorf("%d reports before the cap, want the heartbeat's and some every %v", n, a.drainEvery)
			}
			if c.name == "not manager" && n != 1 {
				t.Errorf("%d reports from a node that is no manager, want 1 (the heartbeat's)", n)
			}
		})
	}
}

package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// fakeAppliance answers the long poll and records reports.
type fakeAppliance struct {
	mu      sync.Mutex
	reports []api.Report
	polls   atomic.Int32
	poll    func(w http.ResponseWriter, r *http.Request, n int32) // nil: 404 (an older appliance)
	got     chan api.Report
}

func (f *fakeAppliance) start(t *testing.T) *httptest.Server {
	f.got = make(chan api.Report, 100)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathReport, func(w http.ResponseWriter, r *http.Request) {
		var rep api.Report
		if err := api.Decode(r.Body, &rep); err != nil {
			t.Errorf("appliance: %v", err)
		}
		f.mu.Lock()
		f.reports = append(f.reports, rep)
		f.mu.Unlock()
		f.got <- rep
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+api.PathOps, func(w http.ResponseWriter, r *http.Request) {
		n := f.polls.Add(1)
		if f.poll == nil {
			http.NotFound(w, r)
			return
		}
		f.poll(w, r, n)
	})
	app := httptest.NewTLSServer(mux)
	t.Cleanup(app.Close)
	return app
}

// runLoop runs loop until the test ends (then waits for it to return).
func runLoop(t *testing.T, loop func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop(ctx); close(done) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the loop did not return within 10 s of its context ending")
		}
	}
	t.Cleanup(stop)
	return stop
}

var managerState = api.SwarmState{State: "active", ControlAvailable: true, NodeID: "n1", Role: api.RoleManager}

// The poll's operations are done and their results reported at once (not
// a heartbeat later: this agent has no heartbeat running); then it polls
// again, asking for api.MaxPollWait.
func TestPollLoopDoesOps(t *testing.T) {
	t.Parallel()
	fd := &fakeDocker{state: "active", control: true}
	nodes := &fakeNodes{availability: "active"}
	fd.extra = nodes.handle
	fa := &fakeAppliance{}
	var wait atomic.Value
	fa.poll = func(w http.ResponseWriter, r *http.Request, n int32) {
		wait.Store(r.URL.Query().Get(api.PollWaitParam))
		if n == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"ops":[{"id":"op-1","node":"w1id","do":"drain"}]}`))
			return
		}
		select { // hold it, as the appliance does
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
		w.WriteHeader(http.StatusNoContent)
	}
	a := testAgent(t, fa.start(t), fd.serve(t))
	a.setSwarm(managerState)
	stop := runLoop(t, a.pollLoop)
	select {
	case rep := <-fa.got:
		if len(rep.OpResults) != 1 || rep.OpResults[0] != (api.NodeOpResult{ID: "op-1"}) {
			t.Fatalf("report after the poll: results %+v, want op-1 done", rep.OpResults)
		}
		if rep.JoinTokens == nil || rep.Swarm.State != "active" {
			t.Errorf("the results report carries no manager push: %+v", rep.Swarm)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report within 10 s of the poll's operations")
	}
	nodes.mu.Lock()
	if nodes.availability != "drain" {
		t.Errorf("docker says %q, want drain", nodes.availability)
	}
	nodes.mu.Unlock()
	waitUntil(t, "the second poll", func() bool { return fa.polls.Load() >= 2 })
	stop()
	if w, _ := wait.Load().(string); w != api.MaxPollWait.String() {
		t.Errorf("poll asked wait=%q, want %s", w, api.MaxPollWait)
	}
}

// An appliance without the poll (404) is asked once, not hammered; a node
// that is not a manager never polls.
func TestPollLoopOldApplianceAndWorker(t *testing.T) {
	t.Parallel()
	fa := &fakeAppliance{}
	a := testAgent(t, fa.start(t), (&fakeDocker{}).serve(t))
	a.setSwarm(managerState)
	stop := runLoop(t, a.pollLoop)
	waitUntil(t, "a poll", func() bool { return fa.polls.Load() >= 1 })
	time.Sleep(300 * time.Millisecond)
	stop()
	if n := fa.polls.Load(); n != 1 {
		t.Errorf("%d polls of an appliance that answered 404, want 1", n)
	}
	if a.state != "poll-404" {
		t.Errorf("console state %q, want the 404 said", a.state)
	}

	fw := &fakeAppliance{poll: func(w http.ResponseWriter, r *http.Request, n int32) { w.WriteHeader(http.StatusNoContent) }}
	w := testAgent(t, fw.start(t), (&fakeDocker{}).serve(t))
	w.cfg.Heartbeat = 50 * time.Millisecond
	w.setSwarm(api.SwarmState{State: "active", NodeID: "w1", Role: api.RoleWorker})
	stop = runLoop(t, w.pollLoop)
	time.Sleep(300 * time.Millisecond)
	if n := fw.polls.Load(); n != 0 {
		t.Errorf("a worker polled %d times", n)
	}
	// Promoted: the next report's state wakes the loop.
	w.setSwarm(managerState)
	waitUntil(t, "a poll after the promotion", func() bool { return fw.polls.Load() >= 1 })
	stop()
}

// 409 (not a manager to the appliance, e.g. a site with an existing
// swarm) makes the loop wait for the next report, not spin; 429 makes it
// rest.
func TestPollLoopRefusedRests(t *testing.T) {
	t.Parallel()
	fa := &fakeAppliance{poll: func(w http.ResponseWriter, r *http.Request, n int32) {
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"error":"not an active manager"}`))
	}}
	a := testAgent(t, fa.start(t), (&fakeDocker{state: "active", control: true}).serve(t))
	a.cfg.Heartbeat = time.Minute
	a.setSwarm(managerState)
	stop := runLoop(t, a.pollLoop)
	time.Sleep(500 * time.Millisecond)
	if n := fa.polls.Load(); n != 1 {
		t.Errorf("%d polls in 0.5 s after a 409, want 1", n)
	}
	if err := a.report(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a poll after the next report", func() bool { return fa.polls.Load() == 2 })
	stop()

	busy := &fakeAppliance{poll: func(w http.ResponseWriter, r *http.Request, n int32) {
		w.WriteHeader(http.StatusTooManyRequests)
	}}
	b := testAgent(t, busy.start(t), (&fakeDocker{}).serve(t))
	b.cfg.Heartbeat = time.Second
	b.setSwarm(managerState)
	stop = runLoop(t, b.pollLoop)
	time.Sleep(500 * time.Millisecond)
	stop()
	if n := busy.polls.Load(); n != 1 {
		t.Errorf("%d polls in 0.5 s after a 429 with a 1 s heartbeat, want 1", n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

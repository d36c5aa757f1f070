package enroll

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// opsLab is a harness with an enrolled manager (swarm node m1) and worker
// (swarm node w1), as their agents would report.
type opsLab struct {
	*harness
	mgr, wrk *node
}

var (
	mgrState = api.SwarmState{State: "active", ControlAvailable: true, NodeID: "m1", ClusterID: "c1", Role: api.RoleManager}
	wrkState = api.SwarmState{State: "active", NodeID: "w1", ClusterID: "c1", Role: api.RoleWorker}
)

func newOpsLab(t *testing.T) *opsLab {
	t.Helper()
	h := newHarness(t)
	l := &opsLab{harness: h}
	l.mgr = h.enrolled("lab-m1", "uuid-m1", "52:54:00:00:00:01", api.RoleManager)
	l.wrk = h.enrolled("lab-w1", "uuid-w1", "52:54:00:00:00:02", api.RoleWorker)
	if code, _ := h.reportAnswer(l.wrk, api.Report{Swarm: wrkState}); code != http.StatusNoContent {
		t.Fatalf("worker report: %d", code)
	}
	return l
}

func (h *harness) enrolled(name, uuid, mac, role string) *node {
	h.t.Helper()
	h.putVM(name, uuid, mac, role)
	n := newNode(h.t)
	code, resp := h.enroll(n, h.token(name, time.Hour, time.Now()), uuid, mac)
	if code != http.StatusOK {
		h.t.Fatalf("enroll %s: %d", name, code)
	}
	n.setCert(h.t, resp.Certificate)
	return n
}

// reportAnswer reports and decodes the answer (204: no operations).
func (h *harness) reportAnswer(n *node, r api.Report) (int, api.ReportAnswer) {
	h.t.Helper()
	var a api.ReportAnswer
	code, err := h.call(h.client(n), "POST", api.PathReport, r, &a)
	if err != nil {
		h.t.Fatal(err)
	}
	if code == http.StatusOK && a.Validate() != nil {
		h.t.Fatalf("the appliance answered invalid ops: %+v", a)
	}
	return code, a
}

// async runs fn in the background; wait returns its error.
func async(fn func() error) (wait func() error) {
	var err error
	var wg sync.WaitGroup
	wg.Go(func() { err = fn() })
	return func() error { wg.Wait(); return err }
}

// pollOps reports as the manager (with results) until an answer carries
// operations.
func (l *opsLab) pollOps(results ...api.NodeOpResult) []api.NodeOp {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		code, a := l.reportAnswer(l.mgr, api.Report{Swarm: mgrState, OpResults: results})
		results = nil
		if code == http.StatusOK && len(a.Ops) > 0 {
			return a.Ops
		}
		if code != http.StatusNoContent {
			l.t.Fatalf("manager report: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.t.Fatal("no operation handed to the manager within 10 s")
	return nil
}

// waitQueued waits until n operations are in the queue.
func (l *opsLab) waitQueued(n int) {
	l.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		l.srv.ops.mu.Lock()
		got := len(l.srv.ops.ops)
		l.srv.ops.mu.Unlock()
		if got == n {
			return
		}
	}
	l.t.Fatalf("%d operations never queued", n)
}

// The way through: the op waits for the manager's next report, only that
// manager gets it (a worker's report stays 204), the call returns with
// the manager's answer, and the timeline of the drained node says so.
func TestNodeOpThroughManager(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if code, _ := l.reportAnswer(l.mgr, api.Report{Swarm: mgrState}); code != http.StatusNoContent {
		t.Fatalf("manager report with nothing to do: %d, want 204", code)
	}
	wait := async(func() error { return l.srv.SetAvailability(ctx, "w1", api.AvailabilityDrain) })
	l.waitQueued(1)
	// A node the appliance made worker that says it is an active manager
	// (promoted by hand) gets nothing: only its own managers are asked.
	promoted := api.SwarmState{State: "active", ControlAvailable: true, NodeID: "w1", ClusterID: "c1", Role: api.RoleManager}
	if code, a := l.reportAnswer(l.wrk, api.Report{Swarm: promoted}); code != http.StatusNoContent || len(a.Ops) != 0 {
		t.Errorf("a promoted worker's report got %d %+v, want 204 and no ops", code, a)
	}
	ops := l.pollOps()
	if len(ops) != 1 || ops[0].Node != "w1" || ops[0].Do != api.OpDrain {
		t.Fatalf("ops %+v, want one drain of w1", ops)
	}
	if code, a := l.reportAnswer(l.wrk, api.Report{Swarm: wrkState}); code != http.StatusNoContent || len(a.Ops) != 0 {
		t.Errorf("a worker's report got %d %+v, want 204 and no ops", code, a)
	}
	// A worker cannot answer the manager's op.
	if code, _ := l.reportAnswer(l.wrk, api.Report{Swarm: wrkState, OpResults: []api.NodeOpResult{{ID: ops[0].ID}}}); code != http.StatusNoContent {
		t.Fatalf("worker report with a result: %d", code)
	}
	if code, a := l.reportAnswer(l.mgr, api.Report{Swarm: mgrState, OpResults: []api.NodeOpResult{{ID: ops[0].ID}}}); code != http.StatusNoContent {
		t.Fatalf("manager's answer: %d %+v, want 204 (nothing more to do)", code, a)
	}
	if err := wait(); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if !strings.Contains(l.logs.String(), "ignored") {
		t.Error("the worker's result was not logged as ignored")
	}
	if got := l.events("52:54:00:00:00:02", "swarm-op"); got != 1 {
		t.Errorf("%d swarm-op events on lab-w1, want 1", got)
	}
	var detail string
	l.st.View(func(tx *store.Tx) error {
		evs, _ := tx.Events("52:54:00:00:00:02")
		for _, e := range evs {
			if e.Kind == "swarm-op" {
				detail = e.Detail
			}
		}
		return nil
	})
	if want := "drained lab-w1 (swarm node w1) through lab-m1"; detail != want {
		t.Errorf("timeline: %q, want %q", detail, want)
	}
	// The results are not stored with the report.
	if rep, _, ok := l.srv.LastReport("lab-m1"); !ok || rep.Swarm.NodeID != "m1" || len(rep.OpResults) != 0 {
		t.Errorf("LastReport(lab-m1) = %+v %v", rep, ok)
	}
}

// Refusals come back as errors naming the manager; a node the manager
// does not know wraps swarm.ErrNoNode.
func TestNodeOpRefused(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	wait := async(func() error { return l.srv.Remove(ctx, "w1", false) })
	ops := l.pollOps()
	if ops[0].Do != api.OpRemove {
		t.Fatalf("op %+v, want remove", ops[0])
	}
	wait2 := async(func() error { return l.srv.Remove(ctx, "nosuch", true) })
	ops2 := l.pollOps(api.NodeOpResult{ID: ops[0].ID, Error: "rpc error: node w1 is not down and can't be removed"})
	err := wait()
	if err == nil || !strings.Contains(err.Error(), "lab-m1") || !strings.Contains(err.Error(), "is not down") || errors.Is(err, swarm.ErrNoNode) {
		t.Errorf("refused remove: %v; want the manager's reason, naming lab-m1", err)
	}
	if ops2[0].Do != api.OpRemoveForce || ops2[0].Node != "nosuch" {
		t.Fatalf("op %+v, want remove-force of nosuch", ops2[0])
	}
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState, OpResults: []api.NodeOpResult{{ID: ops2[0].ID, Error: "node nosuch not found", NotFound: true}}})
	if err := wait2(); !errors.Is(err, swarm.ErrNoNode) {
		t.Errorf("unknown node: %v, want swarm.ErrNoNode", err)
	}
	if got := l.events("52:54:00:00:00:02", "swarm-op"); got != 1 || !strings.Contains(l.logs.String(), "swarm node operation failed") {
		t.Errorf("%d swarm-op events on lab-w1 (want 1: the refusal), failure logged: %v", got, strings.Contains(l.logs.String(), "swarm node operation failed"))
	}
	// Bad input never reaches a manager.
	if err := l.srv.SetAvailability(ctx, "w1", api.AvailabilityPause); err == nil || !strings.Contains(err.Error(), "pause") {
		t.Errorf("pause: %v, want refused", err)
	}
	if err := l.srv.SetAvailability(ctx, "w1/../x", api.AvailabilityDrain); err == nil {
		t.Error("a node ID with '/' was queued")
	}
}

// Nobody takes it: without any manager report the call fails at once;
// with a manager gone quiet it fails after OpTake, naming how long.
func TestNodeOpNoManager(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	l.srv.OpTake = 300 * time.Millisecond
	err := l.srv.SetAvailability(t.Context(), "w1", api.AvailabilityDrain)
	if !errors.Is(err, ErrNoManager) || !strings.Contains(err.Error(), "no manager agent has reported since the appliance started") {
		t.Fatalf("before any manager report: %v", err)
	}
	// A worker's report does not count as a manager's.
	l.reportAnswer(l.wrk, api.Report{Swarm: wrkState})
	// Nor does a manager-role node that is not an active manager.
	l.reportAnswer(l.mgr, api.Report{Swarm: api.SwarmState{State: "inactive"}})
	if err := l.srv.SetAvailability(t.Context(), "w1", api.AvailabilityDrain); !errors.Is(err, ErrNoManager) {
		t.Fatalf("after an inactive manager's report: %v, want ErrNoManager", err)
	}
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	start := time.Now()
	err = l.srv.SetAvailability(t.Context(), "w1", api.AvailabilityDrain)
	if !errors.Is(err, ErrNoManager) || !strings.Contains(err.Error(), "no manager agent has reported for") || !strings.Contains(err.Error(), "lab-m1") {
		t.Fatalf("manager quiet: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("gave up after %v, before OpTake", d)
	}
	if len(l.srv.ops.ops) != 0 {
		t.Errorf("%d ops left in the queue", len(l.srv.ops.ops))
	}
	time.Sleep(350 * time.Millisecond)
	if err := l.srv.Remove(t.Context(), "w1", true); !errors.Is(err, ErrNoManager) || !strings.Contains(err.Error(), "no manager agent has reported for") {
		t.Errorf("manager quiet longer than OpTake: %v, want refused at once", err)
	}
}

// Taken but never answered: the caller's context ends the call, saying
// who holds it; an agent that ignores ops (older than them) is given the
// op maxHandOuts times and then the call fails saying so.
func TestNodeOpUnanswered(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	ctx, cancel := context.WithCancel(t.Context())
	wait := async(func() error { return l.srv.SetAvailability(ctx, "w1", api.AvailabilityActive) })
	l.pollOps()
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "manager lab-m1 took it") {
		t.Errorf("cancelled after hand-out: %v", err)
	}
	// The late answer finds nobody waiting.
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState, OpResults: []api.NodeOpResult{{ID: "op-late"}}})
	if !strings.Contains(l.logs.String(), "result for no waiting operation") {
		t.Error("a result for no waiting op was not logged")
	}

	bounded, cancel2 := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel2()
	wait = async(func() error { return l.srv.SetAvailability(bounded, "w1", api.AvailabilityDrain) })
	var ids []string
	for range maxHandOuts {
		ops := l.pollOps() // an old agent: never answers
		ids = append(ids, ops[0].ID)
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("hand-outs carry IDs %v, want the same op each time", ids)
	}
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	if err := wait(); err == nil || !strings.Contains(err.Error(), "older than node operations") {
		t.Errorf("old agent: %v", err)
	}
}

// operatorSource is an existing swarm's manager that can change nodes.
type operatorSource struct {
	sourceFunc
	mu    sync.Mutex
	calls []string
	err   error
}

func (o *operatorSource) SetAvailability(_ context.Context, id, a string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, a+" "+id)
	return o.err
}

func (o *operatorSource) Remove(_ context.Context, id string, force bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, "remove "+id+map[bool]string{true: " force"}[force])
	return o.err
}

// With an existing swarm the op goes straight to its manager; a source
// that cannot change nodes says so.
func TestNodeOpRemoteSource(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	src := &operatorSource{sourceFunc: func(context.Context) (swarm.Info, error) { return swarm.Info{}, swarm.ErrNoSwarm }}
	l.srv.Swarm = src
	ctx := t.Context()
	if err := l.srv.SetAvailability(ctx, "w1", api.AvailabilityDrain); err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Remove(ctx, "w1", true); err != nil {
		t.Fatal(err)
	}
	if strings.Join(src.calls, ",") != "drain w1,remove w1 force" {
		t.Errorf("calls %v", src.calls)
	}
	if got := l.events("52:54:00:00:00:02", "swarm-op"); got != 2 {
		t.Errorf("%d swarm-op events, want 2", got)
	}
	// No ops for a manager's agent then: the existing manager does them.
	if code, _ := l.reportAnswer(l.mgr, api.Report{Swarm: mgrState}); code != http.StatusNoContent {
		t.Errorf("manager report with an existing swarm: %d", code)
	}
	l.srv.Swarm = sourceFunc(src.sourceFunc)
	if err := l.srv.SetAvailability(ctx, "w1", api.AvailabilityDrain); !errors.Is(err, ErrNoManager) || !strings.Contains(err.Error(), "cannot change nodes") {
		t.Errorf("read-only source: %v", err)
	}
}

// Revoke takes the node out of the swarm when a manager can, and
// succeeds saying the swarm node stays (and the command) when none can.
func TestRevokeRemovesSwarmNode(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	// No manager: revoked all the same, the swarm node stays.
	note, err := l.srv.RevokeNode(t.Context(), "lab-w1")
	if err != nil || !strings.Contains(note, "stays in the swarm") || !strings.Contains(note, "docker node rm --force w1") {
		t.Fatalf("RevokeNode without a manager: %q, %v", note, err)
	}
	if code, _ := l.reportAnswer(l.wrk, api.Report{Swarm: wrkState}); code != http.StatusForbidden {
		t.Errorf("revoked worker's report: %d, want 403", code)
	}
	if l.events("52:54:00:00:00:02", "revoke") != 2 {
		t.Errorf("want the revoke and the 'stays' note on the timeline")
	}

	// A second worker, and a manager that reports: Revoke waits for it.
	w2 := l.enrolled("lab-w2", "uuid-w2", "52:54:00:00:00:03", api.RoleWorker)
	l.reportAnswer(w2, api.Report{Swarm: api.SwarmState{State: "active", NodeID: "w2", Role: api.RoleWorker}})
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	wait := async(func() error { return l.srv.Revoke("lab-w2") })
	ops := l.pollOps()
	if len(ops) != 1 || ops[0].Do != api.OpRemoveForce || ops[0].Node != "w2" {
		t.Fatalf("ops %+v, want remove-force of w2", ops)
	}
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState, OpResults: []api.NodeOpResult{{ID: ops[0].ID}}})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.logs.String(), "swarm node w2 removed") {
		t.Errorf("log does not say the swarm node was removed:\n%s", l.logs.String())
	}
	if l.events("52:54:00:00:00:03", "swarm-op") != 1 || l.events("52:54:00:00:00:03", "revoke") != 1 {
		t.Error("want one revoke and one swarm-op event on lab-w2's timeline")
	}
}

// LastReport answers from memory before the store, and from the store
// for a node not heard since the start.
func TestLastReport(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	if _, _, ok := l.srv.LastReport("lab-m1"); ok {
		t.Error("LastReport of a node that never reported: ok")
	}
	rep, at, ok := l.srv.LastReport("lab-w1")
	if !ok || rep.Swarm.NodeID != "w1" || time.Since(at) > time.Minute {
		t.Fatalf("LastReport(lab-w1) = %+v %v %v", rep.Swarm, at, ok)
	}
	if err := l.srv.flush(); err != nil {
		t.Fatal(err)
	}
	fresh := &Server{Store: l.st}
	rep2, at2, ok := fresh.LastReport("lab-w1")
	if !ok || rep2.Swarm.NodeID != "w1" || !at2.Equal(at) {
		t.Errorf("from the store: %+v %v %v, want w1 at %v", rep2.Swarm, at2, ok, at)
	}
}

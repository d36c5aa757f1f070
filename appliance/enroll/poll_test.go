package enroll

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

type pollAnswer struct {
	code int
	ans  api.ReportAnswer
	err  error
	took time.Duration
}

// poll asks api.PathOps as n with the given wait, in the background.
func (h *harness) poll(n *node, wait string) <-chan pollAnswer {
	c := h.client(n)
	c.Timeout = 40 * time.Second
	out := make(chan pollAnswer, 1)
	go func() {
		start := time.Now()
		var a pollAnswer
		path := api.PathOps
		if wait != "" {
			path += "?" + api.PollWaitParam + "=" + wait
		}
		a.code, a.err = h.call(c, "GET", path, nil, &a.ans)
		a.took = time.Since(start)
		out <- a
	}()
	return out
}

// waitPolls waits until n polls wait on srv.
func waitPolls(t *testing.T, srv *Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if srv.ops.waitingPolls() == n {
			return
		}
	}
	t.Fatalf("%d polls waiting, want %d", srv.ops.waitingPolls(), n)
}

// A waiting poll gets the operation the moment it is queued (its wait is
// 20 s: a 200 with the op can only come from the queue); a heartbeat that
// crosses it does not get the same op again; the results come in a report.
func TestPollHandsOutAtOnce(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	got := l.poll(l.mgr, "20s")
	waitPolls(t, l.srv, 1)
	wait := async(func() error { return l.srv.SetAvailability(ctx, "w1", api.AvailabilityDrain) })
	a := <-got
	if a.err != nil || a.code != http.StatusOK || len(a.ans.Ops) != 1 || a.ans.Ops[0].Do != api.OpDrain || a.ans.Ops[0].Node != "w1" {
		t.Fatalf("poll: %d %+v %v, want 200 with the drain of w1", a.code, a.ans, a.err)
	}
	if a.ans.Validate() != nil {
		t.Fatalf("invalid answer %+v", a.ans)
	}
	t.Logf("poll answered %v after it was opened", a.took.Round(time.Millisecond))
	if code, ans := l.reportAnswer(l.mgr, api.Report{Swarm: mgrState}); code != http.StatusNoContent {
		t.Fatalf("a heartbeat crossing the poll's answer got %d %+v, want 204 (the agent is doing it)", code, ans)
	}
	// Nor does another poll.
	if b := <-l.poll(l.mgr, "50ms"); b.code != http.StatusNoContent {
		t.Fatalf("second poll: %d %+v, want 204", b.code, b.ans)
	}
	if code, _ := l.reportAnswer(l.mgr, api.Report{Swarm: mgrState, OpResults: []api.NodeOpResult{{ID: a.ans.Ops[0].ID}}}); code != http.StatusNoContent {
		t.Fatalf("results report: %d", code)
	}
	if err := wait(); err != nil {
		t.Fatalf("drain: %v", err)
	}
	if n := l.srv.ops.waitingPolls(); n != 0 {
		t.Errorf("%d polls still counted", n)
	}
}

// An op a poll handed out and nobody answered (the answer was lost) is
// handed again by the manager's report once pollAnswerGrace passed.
func TestPollLostAnswerHandedAgain(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	wait := async(func() error { return l.srv.SetAvailability(ctx, "w1", api.AvailabilityActive) })
	l.waitQueued(1)
	a := <-l.poll(l.mgr, "5s") // queued before: handed at once
	if a.code != http.StatusOK || len(a.ans.Ops) != 1 {
		t.Fatalf("poll: %d %+v %v", a.code, a.ans, a.err)
	}
	l.skew.Store(int64(pollAnswerGrace + time.Second))
	ops := l.pollOps()
	if len(ops) != 1 || ops[0].ID != a.ans.Ops[0].ID {
		t.Fatalf("report after the grace got %+v, want %s again", ops, a.ans.Ops[0].ID)
	}
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState, OpResults: []api.NodeOpResult{{ID: ops[0].ID}}})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// Who may not poll, and how a poll is bounded.
func TestPollRefused(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	// The manager's last report is not an active manager's yet.
	l.reportAnswer(l.mgr, api.Report{Swarm: api.SwarmState{State: "inactive"}})
	if a := <-l.poll(l.mgr, "1s"); a.code != http.StatusConflict {
		t.Errorf("poll of a manager not in the swarm: %d, want 409", a.code)
	}
	// A worker, even one that says it is a manager (promoted by hand).
	l.reportAnswer(l.wrk, api.Report{Swarm: api.SwarmState{State: "active", ControlAvailable: true, NodeID: "w1", Role: api.RoleManager}})
	if a := <-l.poll(l.wrk, "1s"); a.code != http.StatusConflict {
		t.Errorf("poll of a worker: %d, want 409", a.code)
	}
	// No client certificate.
	if a := <-l.poll(&node{}, "1s"); a.code != http.StatusUnauthorized {
		t.Errorf("poll without a certificate: %d, want 401", a.code)
	}
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	if a := <-l.poll(l.mgr, "soon"); a.code != http.StatusBadRequest {
		t.Errorf("wait=soon: %d, want 400", a.code)
	}
	if a := <-l.poll(l.mgr, "-1s"); a.code != http.StatusBadRequest {
		t.Errorf("wait=-1s: %d, want 400", a.code)
	}
	// At most api.MaxPollsPerNode waiting polls of one node.
	var held []<-chan pollAnswer
	for range api.MaxPollsPerNode {
		held = append(held, l.poll(l.mgr, "3s"))
	}
	waitPolls(t, l.srv, api.MaxPollsPerNode)
	if a := <-l.poll(l.mgr, "10s"); a.code != http.StatusTooManyRequests {
		t.Errorf("poll beyond %d: %d, want 429", api.MaxPollsPerNode, a.code)
	}
	// The op queued now goes to exactly one of the waiting polls; the
	// other one ends with 204 when its wait does.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	wait := async(func() error { return l.srv.SetAvailability(ctx, "w1", api.AvailabilityDrain) })
	first, second := <-held[0], <-held[1]
	if first.code+second.code != http.StatusOK+http.StatusNoContent {
		t.Errorf("the two waiting polls answered %d and %d, want one 200 and one 204", first.code, second.code)
	}
	var id string
	for _, a := range []pollAnswer{first, second} {
		if a.code == http.StatusOK {
			id = a.ans.Ops[0].ID
		}
	}
	if id == "" {
		t.Fatalf("neither waiting poll got the op: %d %d", first.code, second.code)
	}
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState, OpResults: []api.NodeOpResult{{ID: id}}})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// A wait with nothing queued ends with 204.
func TestPollWaitEnds(t *testing.T) {
	t.Parallel()
	l := newOpsLab(t)
	l.reportAnswer(l.mgr, api.Report{Swarm: mgrState})
	if a := <-l.poll(l.mgr, "100ms"); a.code != http.StatusNoContent || a.err != nil {
		t.Errorf("poll with nothing to do: %d %v, want 204", a.code, a.err)
	}
}

// Shutting Serve down answers the waiting polls at once (204) and Serve
// returns; nothing stays counted; a poll after is not served.
func TestPollShutdown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	srv := &Server{Store: h.st, CA: h.srv.CA, Hosts: []string{"127.0.0.1"}, Log: slog.New(slog.DiscardHandler)}
	h.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "https://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	mgr := h.enrolled("sd-m1", "uuid-sd", "52:54:00:00:00:31", api.RoleManager)
	h.report(mgr, api.Report{Swarm: mgrState})
	p1, p2 := h.poll(mgr, "20s"), h.poll(mgr, "20s")
	waitPolls(t, srv, 2)
	start := time.Now()
	cancel()
	for _, p := range []<-chan pollAnswer{p1, p2} {
		if a := <-p; a.code != http.StatusNoContent {
			t.Errorf("waiting poll at shutdown: %d %v, want 204", a.code, a.err)
		}
	}
	// Without the shutdown's answer they would wait out Shutdown's 5 s
	// (Serve then fails) or their own 20 s.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("waiting polls answered %v after the shutdown began, want at once", took)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if n := srv.ops.waitingPolls(); n != 0 {
		t.Errorf("%d polls counted after shutdown", n)
	}
	if a := <-h.poll(mgr, "1s"); a.err == nil {
		t.Errorf("poll after shutdown: %d, want no connection", a.code)
	}
}

func FuzzPollWait(f *testing.F) {
	for _, v := range []string{"", "25s", "1ms", "1h", "-1s", "0", "soon", "9223372036854775807ns", "1e3s"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := pollWait(v)
		if err != nil {
			if strings.Contains(err.Error(), v) && len(v) > 32 {
				t.Fatalf("the error repeats a long parameter: %v", err)
			}
			return
		}
		if d <= 0 || d > api.MaxPollWait {
			t.Fatalf("wait %q accepted as %v, want (0, %v]", v, d, api.MaxPollWait)
		}
	})
}

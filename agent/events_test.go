package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

const nodeEventLine = `{"Type":"node","Action":"update","Actor":{"ID":"w1id","Attributes":{"availability.new":"drain","name":"w1"}},"scope":"swarm","time":1,"timeNano":1}`

// eventServer is a Docker /events endpoint: each connection streams the
// lines sent on lines until end is closed for it.
type eventServer struct {
	lines   chan string
	conns   atomic.Int32
	filters atomic.Value
	end     chan struct{} // closing it ends the current stream
	mu      sync.Mutex
}

func (e *eventServer) handle(mux *http.ServeMux) {
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		e.filters.Store(r.URL.Query().Get("filters"))
		e.mu.Lock()
		end := e.end
		e.mu.Unlock()
		e.conns.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case l := <-e.lines:
				fmt.Fprintln(w, l)
				w.(http.Flusher).Flush()
			case <-end:
				return
			case <-r.Context().Done():
				return
			}
		}
	})
}

// restart ends the current stream, as a dockerd restart does.
func (e *eventServer) restart() {
	e.mu.Lock()
	close(e.end)
	e.end = make(chan struct{})
	e.mu.Unlock()
}

func newEventServer(t *testing.T) (*eventServer, func(context.Context) (net.Conn, error)) {
	e := &eventServer{lines: make(chan string, 10), end: make(chan struct{})}
	mux := http.NewServeMux()
	e.handle(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	return e, func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "tcp", addr) }
}

// The watch asks for node events only, calls seen per event, and ends
// with an error on a line it refuses: a non-node event, bad JSON, or a
// line past maxEventLine.
func TestWatchNodeEvents(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, bad, want string
	}{
		{"container event", `{"Type":"container","Action":"start"}`, `type "container"`},
		{"bad JSON", `{"Type":"node"`, "docker event"},
		{"long line", `{"Type":"node","x":"` + strings.Repeat("a", maxEventLine) + `"}`, "token too long"},
	} {
		e, dial := newEventServer(t)
		var seen atomic.Int32
		connected := make(chan struct{})
		e.lines <- nodeEventLine
		e.lines <- nodeEventLine
		e.lines <- c.bad
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := watchNodeEvents(ctx, dial, 5*time.Second, func() { close(connected) }, func() { seen.Add(1) })
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
		if n := seen.Load(); n != 2 {
			t.Errorf("%s: seen %d events, want 2", c.name, n)
		}
		if f, _ := e.filters.Load().(string); f != `{"type":["node"]}` {
			t.Errorf("%s: filters %q", c.name, f)
		}
	}
}

// A dockerd that takes the connection and never answers (one going
// down) does not hold the watch: it ends after the header wait.
func TestWatchNodeEventsSilentDaemon(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	dial := func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", l.Addr().String())
	}
	err = watchNodeEvents(ctx, dial, 200*time.Millisecond, func() { t.Error("connected to a silent daemon") }, func() {})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Errorf("watch of a silent daemon: %v (context: %v), want the header timeout", err, ctx.Err())
	}
}

// Bursts fold into one call; calls are at least gap apart.
func TestDebounce(t *testing.T) {
	t.Parallel()
	in := make(chan struct{}, 1)
	var mu sync.Mutex
	var fired []time.Time
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		debounce(ctx, in, 50*time.Millisecond, 400*time.Millisecond, 300*time.Millisecond, func() {
			mu.Lock()
			fired = append(fired, time.Now())
			mu.Unlock()
		})
		close(done)
	}()
	signal := func() {
		select {
		case in <- struct{}{}:
		default:
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(fired) }
	for range 10 { // one burst
		signal()
		time.Sleep(5 * time.Millisecond)
	}
	waitUntil(t, "the burst's call", func() bool { return count() == 1 })
	signal() // right after: waits out the gap
	waitUntil(t, "the second call", func() bool { return count() == 2 })
	// A stream of signals that never goes quiet still fires (maxWait).
	stopStream := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(stopStream) {
		signal()
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(fired) < 3 {
		t.Errorf("%d calls; a steady stream of events never fired", len(fired))
	}
	for i := 1; i < len(fired); i++ {
		if d := fired[i].Sub(fired[i-1]); d < 300*time.Millisecond {
			t.Errorf("calls %d and %d only %v apart, want at least the 300 ms gap", i-1, i, d)
		}
	}
}

// A manager's agent reports after a node event (no heartbeat runs here),
// with its node list, and again after its dockerd's stream restarts.
func TestEventsLoopReports(t *testing.T) {
	t.Parallel()
	fd := &fakeDocker{state: "active", control: true, nodes: `[{"ID":"w1id","Description":{"Hostname":"w1"},"Spec":{"Role":"worker","Availability":"drain"},"Status":{"State":"ready"}}]`}
	ev := &eventServer{lines: make(chan string, 10), end: make(chan struct{})}
	fd.extra = ev.handle
	fa := &fakeAppliance{}
	a := testAgent(t, fa.start(t), fd.serve(t))
	a.setSwarm(managerState)
	runLoop(t, a.eventsLoop)
	waitUntil(t, "the events stream", func() bool { return ev.conns.Load() == 1 })
	sent := time.Now()
	ev.lines <- nodeEventLine
	ev.lines <- nodeEventLine
	select {
	case rep := <-fa.got:
		if rep.JoinTokens == nil || len(rep.JoinTokens.Nodes) != 1 || rep.JoinTokens.Nodes[0].Availability != "drain" {
			t.Fatalf("report after a node event carries %+v, want the node list", rep.JoinTokens)
		}
		t.Logf("report %v after the event", time.Since(sent).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("no report within 10 s of a node event")
	}
	time.Sleep(eventMaxWait)
	select {
	case <-fa.got:
		t.Error("two events of one burst made two reports")
	default:
	}
	ev.restart()
	waitUntil(t, "the reconnected stream", func() bool { return ev.conns.Load() == 2 })
	select {
	case <-fa.got: // the catch-up report
	case <-time.After(10 * time.Second):
		t.Fatal("no report after the stream came back")
	}
	ev.lines <- nodeEventLine
	select {
	case <-fa.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no report for an event on the reconnected stream")
	}
}

// A node the last report found no manager (a manager's dockerd going
// down reports inactive) still watches: its stream's events, and its
// reconnection, bring reports without waiting for a heartbeat.
func TestEventsLoopNotManager(t *testing.T) {
	t.Parallel()
	ev := &eventServer{lines: make(chan string, 10), end: make(chan struct{})}
	fd := &fakeDocker{state: "inactive", extra: ev.handle}
	fa := &fakeAppliance{}
	a := testAgent(t, fa.start(t), fd.serve(t))
	a.setSwarm(api.SwarmState{State: "inactive"})
	runLoop(t, a.eventsLoop)
	waitUntil(t, "the events stream", func() bool { return ev.conns.Load() == 1 })
	ev.lines <- nodeEventLine
	select {
	case <-fa.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no report after a node event")
	}
	ev.restart()
	select {
	case <-fa.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no report after the stream was reconnected")
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(nodeEventLine))
	f.Add([]byte(`{"Type":"container"}`))
	f.Add([]byte(`{"Type":"node","Actor":{"ID":7}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := parseEvent(line)
		if err == nil && ev.Type != "node" {
			t.Fatalf("accepted a %q event", ev.Type)
		}
		if err != nil && strings.Contains(err.Error(), string(line)) && len(line) > 64 {
			t.Fatalf("the error repeats the whole line: %v", err)
		}
	})
}

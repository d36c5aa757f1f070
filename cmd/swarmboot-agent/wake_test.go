package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	swarmtypes "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// wakeLab is a swarm swarmboot made, a manager and a worker with real
// agents and dockerds, whose manager agent can be restarted with another
// heartbeat and with or without the long poll and node events.
type wakeLab struct {
	a        *appliance
	mgr, wrk *machine
	id       string // the worker's swarm node ID
	logs     map[string]*lockedBuf
	stopMgr  func()
}

func newWakeLab(tb testing.TB, subnet int) *wakeLab {
	tb.Helper()
	w := &wakeLab{logs: map[string]*lockedBuf{"dockerd": {}, "appliance": {}, "agent": {}, "console": {}}}
	l := newLab(tb, subnet)
	w.a = startAppliance(tb, nil, w.logs["appliance"])
	w.mgr = w.a.machine(tb, l.add(w.logs["dockerd"]), "wake-m1", "manager", subnet*2)
	w.wrk = w.a.machine(tb, l.add(w.logs["dockerd"]), "wake-w1", "worker", subnet*2+1)
	w.stopMgr = w.a.run(tb, w.mgr, w.logs["console"], w.logs["agent"])
	w.a.run(tb, w.wrk, w.logs["console"], w.logs["agent"])
	waitNodes(tb, w.mgr.d, "a manager and a worker", func(n map[string]string) bool {
		return countReady(n, "manager") == 1 && countReady(n, "worker") == 1
	})
	w.id = nodeID(tb, w.wrk.d)
	// The appliance lists the worker ready.
	if _, err := w.listed(context.Background(), api.AvailabilityActive, 90*time.Second); err != nil {
		tb.Fatal(err)
	}
	return w
}

// restartManager runs the manager's agent again with heartbeat hb (and
// the old heartbeat-only behaviour when only), and waits for its first
// report.
func (w *wakeLab) restartManager(tb testing.TB, hb time.Duration, only bool) {
	tb.Helper()
	w.stopMgr()
	since := time.Now()
	w.stopMgr = w.a.runWith(tb, w.mgr, w.logs["console"], w.logs["agent"], func(c *agent.Config) {
		c.Heartbeat, c.HeartbeatOnly = hb, only
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rep, at, ok := w.a.srv.LastReport(w.mgr.name); ok && at.After(since) && rep.Swarm.ControlAvailable {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the restarted manager agent did not report within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // its poll and event stream open
}

// listed waits until the appliance's node list (what the manager pushed)
// shows the worker ready with availability, and says how long it took.
func (w *wakeLab) listed(ctx context.Context, availability string, limit time.Duration) (time.Duration, error) {
	return w.listedAs(ctx, api.NodeReady, availability, limit)
}

// listedAs waits until the appliance lists the worker in state with
// availability.
func (w *wakeLab) listedAs(ctx context.Context, state, availability string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	var last api.SwarmNode
	for time.Since(start) < limit {
		if info, err := w.a.srv.CurrentSwarm(ctx); err == nil {
			if i := slices.IndexFunc(info.Nodes, func(n api.SwarmNode) bool { return n.ID == w.id }); i >= 0 {
				last = info.Nodes[i]
				if last.State == state && last.Availability == availability {
					return time.Since(start), nil
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("the appliance did not list %s %s/%s within %v (last: %+v)", w.id, state, availability, limit, last)
}

// byRestart stops the worker's dockerd, waits until the appliance lists
// it down, starts it and returns how long from the start until the
// appliance lists it ready again (what a roll waits for after the reset;
// dockerd's own start is in it, on both sides).
func (w *wakeLab) byRestart(tb testing.TB, limit time.Duration) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*limit)
	defer cancel()
	w.wrk.d.stop()
	if _, err := w.listedAs(ctx, api.NodeDown, api.AvailabilityActive, limit); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	w.wrk.d.start()
	if _, err := w.listed(ctx, api.AvailabilityActive, limit); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// byAppliance drains or activates the worker through the appliance and
// returns how long until the appliance lists it so.
func (w *wakeLab) byAppliance(tb testing.TB, availability string, limit time.Duration) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	if err := w.a.srv.SetAvailability(ctx, w.id, availability); err != nil {
		tb.Fatalf("%s of %s: %v", availability, w.id, err)
	}
	if _, err := w.listed(ctx, availability, time.Until(start.Add(limit))); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// byDocker changes the worker's availability on the manager's Docker API
// (an operator's docker node update) and returns how long until the
// appliance lists it so.
func (w *wakeLab) byDocker(tb testing.TB, availability string, limit time.Duration) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	res, err := w.mgr.d.c.NodeInspect(ctx, w.id, client.NodeInspectOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	spec := res.Node.Spec
	spec.Availability = swarmtypes.NodeAvailability(availability)
	if _, err := w.mgr.d.c.NodeUpdate(ctx, w.id, client.NodeUpdateOptions{Version: res.Node.Version, Spec: spec}); err != nil {
		tb.Fatal(err)
	}
	if _, err := w.listed(ctx, availability, time.Until(start.Add(limit))); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// TestManagedOpsWithoutHeartbeat: with real dockerds, a manager agent on
// the heartbeat path alone (as before the long poll) still drains; with
// a 10 min heartbeat and the long poll and node events, a drain through
// the appliance and an activate made on the manager's Docker API are
// listed by the appliance within 8 s, and so are a change made on the
// manager after its dockerd restarted (the event stream is opened again)
// and an activate after it (the poll is back) — no heartbeat can have
// brought any of them.
func TestManagedOpsWithoutHeartbeat(t *testing.T) {
	needLab(t)
	t.Parallel()
	w := newWakeLab(t, 64)
	w.restartManager(t, 400*time.Millisecond, true)
	took := w.byAppliance(t, api.AvailabilityDrain, 20*time.Second)
	t.Logf("heartbeat-only agent (400 ms): drain listed after %v", took.Round(time.Millisecond))

	w.restartManager(t, 10*time.Minute, false)
	took = w.byAppliance(t, api.AvailabilityActive, 8*time.Second)
	t.Logf("long poll (10 min heartbeat): activate listed after %v", took.Round(time.Millisecond))
	took = w.byDocker(t, api.AvailabilityDrain, 8*time.Second)
	t.Logf("node event (10 min heartbeat): docker node update listed after %v", took.Round(time.Millisecond))
	took = w.byAppliance(t, api.AvailabilityActive, 8*time.Second)
	t.Logf("long poll (10 min heartbeat): activate listed after %v", took.Round(time.Millisecond))

	// The manager's dockerd restarts: once it leads its swarm again, a
	// change on it is listed through the reopened event stream.
	w.mgr.d.stop()
	w.mgr.d.start()
	waitNodes(t, w.mgr.d, "the manager back with its worker", func(n map[string]string) bool {
		return countReady(n, "manager") == 1 && countReady(n, "worker") == 1
	})
	defer func() {
		if t.Failed() {
			var buf strings.Builder
			pprof.Lookup("goroutine").WriteTo(&buf, 1)
			for _, g := range strings.Split(buf.String(), "\n\n") {
				if strings.Contains(g, "swarmboot/agent.") {
					t.Log(g)
				}
			}
			for _, l := range strings.Split(w.logs["agent"].String(), "\n") {
				if strings.Contains(l, "event") || strings.Contains(l, "report") {
					t.Log(l)
				}
			}
		}
	}()
	took = w.byDocker(t, api.AvailabilityDrain, 15*time.Second)
	t.Logf("node event after the manager's dockerd restarted: listed after %v", took.Round(time.Millisecond))
	took = w.byAppliance(t, api.AvailabilityActive, 15*time.Second)
	t.Logf("long poll after the manager's dockerd restarted: activate listed after %v", took.Round(time.Millisecond))
	if got := w.a.events(t, w.wrk.mac, "swarm-op"); got != 4 {
		t.Errorf("%d swarm-op events on the worker's timeline, want 4", got)
	}
	scanSecrets(t, w.logs, append(joinTokens(t, w.mgr.d), w.mgr.token, w.wrk.token))
}

// BenchmarkDrainListed: how long from a drain (or activate) until the
// appliance lists the node so, with the manager agent's heartbeat at
// benchHeartbeat: "before" on the heartbeat alone, "after" with the long
// poll (operations through the appliance) and node events (changes
// made on the manager's Docker API, and the worker listed ready again
// after its dockerd restarted, as after a roll's reset). Operations follow each other at
// once, as a roll's do: on the heartbeat path each waits about a whole
// heartbeat. The production heartbeat is 30 s; 5 s keeps the run short
// (the "before" numbers scale with it, the "after" ones do not).
func BenchmarkDrainListed(b *testing.B) {
	if why := labMissing(); why != "" {
		b.Skip(why)
	}
	const benchHeartbeat = 5 * time.Second
	const pairs = 3         // drain+activate pairs per side
	const restartRounds = 3 // worker dockerd restarts per side
	for range b.N {
		w := newWakeLab(b, 65)
		measure := func(by func(testing.TB, string, time.Duration) time.Duration) []time.Duration {
			var ds []time.Duration
			for range pairs {
				for _, av := range []string{api.AvailabilityDrain, api.AvailabilityActive} {
					ds = append(ds, by(b, av, 4*benchHeartbeat))
					time.Sleep(rand.N(100 * time.Millisecond))
				}
			}
			return ds
		}
		restarts := func() []time.Duration {
			var ds []time.Duration
			for range restartRounds {
				ds = append(ds, w.byRestart(b, 60*time.Second))
			}
			return ds
		}
		w.restartManager(b, benchHeartbeat, true)
		beforeOp, beforeDocker, beforeReady := measure(w.byAppliance), measure(w.byDocker), restarts()
		w.restartManager(b, benchHeartbeat, false)
		afterOp, afterDocker, afterReady := measure(w.byAppliance), measure(w.byDocker), restarts()
		for _, r := range []struct {
			name          string
			before, after []time.Duration
		}{{"op", beforeOp, afterOp}, {"docker", beforeDocker, afterDocker}, {"ready", beforeReady, afterReady}} {
			mb, ma := median(r.before), median(r.after)
			b.ReportMetric(ms(mb), r.name+"-before-ms")
			b.ReportMetric(ms(ma), r.name+"-after-ms")
			b.ReportMetric(float64(mb)/float64(ma), r.name+"-x-vs-heartbeat")
			b.Logf("%s listed: heartbeat-only (%v heartbeat) median %v %v; long poll + events median %v %v; %.1fx",
				r.name, benchHeartbeat, mb.Round(time.Millisecond), roundAll(r.before), ma.Round(time.Millisecond), roundAll(r.after), float64(mb)/float64(ma))
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

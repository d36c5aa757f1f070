package rotate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

var (
	oldV = "old@111111111111"
	newV = "new@222222222222"
)

func workers(w *world, names ...string) {
	for _, n := range names {
		w.add(n, "workers", api.RoleWorker, "old", oldV)
	}
}

// TestRollOrderStepsAndRecord rolls three workers and three managers:
// workers first, the leader last, each node drain → image → reset →
// activate, never two nodes down at once; every VM boots the new image
// afterwards, the store records a finished roll and rotate events.
func TestRollOrderStepsAndRecord(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	workers(w, "w2", "w1", "w3")
	w.add("m1", "managers", api.RoleManager, "old", oldV).leader = true
	w.add("m2", "managers", api.RoleManager, "old", oldV)
	w.add("m3", "managers", api.RoleManager, "old", oldV)
	var mu sync.Mutex
	var progress []Progress
	rot, err := w.roller().Run(context.Background(), Request{Targets: []Target{{"managers", "new"}, {"workers", "new"}}, Timeout: 5 * time.Second},
		func(p Progress) { mu.Lock(); progress = append(progress, p); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{"w1", "w2", "w3", "m2", "m3", "m1"} {
		want = append(want, "drain "+n, "image "+n+" new", "reset "+n, "activate "+n)
	}
	if got := w.callLog(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %q\nwant %q", got, want)
	}
	if w.maxDn != 1 {
		t.Errorf("%d nodes down at once, want 1", w.maxDn)
	}
	if rot.State != store.RotationDone || len(rot.Nodes) != 6 || w.rotation().State != store.RotationDone {
		t.Errorf("roll %+v, want done with 6 nodes in the store too", rot)
	}
	for _, name := range []string{"w1", "m1"} {
		if n := w.node(name); n.version != newV || n.avail != api.AvailabilityActive {
			t.Errorf("%s: %+v, want on %s and active", name, n, newV)
		}
	}
	err = w.st.View(func(tx *store.Tx) error {
		vm, err := tx.VM("w3")
		if err != nil {
			return err
		}
		if vm.Image != "new" {
			t.Errorf("w3 boots %q, want new", vm.Image)
		}
		evs, err := tx.Events(vm.MAC)
		var steps []string
		for _, e := range evs {
			if e.Kind == EventKind {
				steps = append(steps, strings.SplitN(e.Detail, ":", 2)[0])
			}
		}
		if want := []string{"drain", "image", "reset", "boot", "activate", "done"}; !slices.Equal(steps, want) {
			t.Errorf("w3 rotate events %q, want %q", steps, want)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(progress) < 2 || progress[0].Step != "start" || progress[len(progress)-1].Step != "done" {
		t.Errorf("progress %v: want start … done", progress)
	}
}

// TestSkipAndResumeAfterCrash: the appliance died while w2 was booting
// (it came back on the new image but is still drained); the next start
// marks the roll interrupted, and the same roll again skips w1 (done),
// only activates w2 and rolls w3. A node someone else drained stays so.
func TestSkipAndResumeAfterCrash(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.add("w1", "workers", api.RoleWorker, "new", newV)
	w2 := w.add("w2", "workers", api.RoleWorker, "new", newV)
	w2.avail = api.AvailabilityDrain
	workers(w, "w3")
	w4 := w.add("w4", "workers", api.RoleWorker, "new", newV)
	w4.avail = api.AvailabilityDrain
	crashed := store.Rotation{ID: "x", State: store.RotationRunning, Nodes: []store.RotationNode{
		{VM: "w1", Step: "done"}, {VM: "w2", Step: "boot", Drained: true}, {VM: "w3", Step: "pending"}}}
	if err := w.st.Update(func(tx *store.Tx) error { return tx.PutRotation(crashed) }); err != nil {
		t.Fatal(err)
	}
	marked, err := Interrupted(w.st, time.Now())
	if err != nil || marked == nil || w.rotation().State != store.RotationInterrupted || !strings.Contains(marked.Message, "w2 (step boot)") {
		t.Fatalf("Interrupted: %+v, %v; want the running roll marked, naming w2", marked, err)
	}
	if again, err := Interrupted(w.st, time.Now()); err != nil || again != nil {
		t.Errorf("Interrupted twice: %+v, %v; want nothing to mark", again, err)
	}

	rot, err := w.roller().Run(context.Background(), Request{Targets: []Target{{"workers", "new"}}, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"activate w2", "drain w3", "image w3 new", "reset w3", "activate w3"}
	if got := w.callLog(); !slices.Equal(got, want) {
		t.Errorf("resumed calls %q, want %q", got, want)
	}
	steps := map[string]string{}
	for _, n := range rot.Nodes {
		steps[n.VM] = n.Step
	}
	if steps["w1"] != "skipped" || steps["w2"] != "done" || steps["w3"] != "done" || steps["w4"] != "skipped" {
		t.Errorf("steps %v", steps)
	}
	if w.node("w4").avail != api.AvailabilityDrain {
		t.Error("w4, drained by someone else, was activated")
	}
}

// TestTimeoutLeavesNodeDrained: w2 never comes back; the roll stops at it
// after the timeout, w2 stays drained, w3 is not touched, and the error
// and the store say what to do.
func TestTimeoutLeavesNodeDrained(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	workers(w, "w1", "w2", "w3")
	w.back = func(n *fakeNode, v string) (string, string, bool) { return v, n.id, n.name != "w2" }
	r := w.roller()
	r.WaitNote = 50 * time.Millisecond
	var mu sync.Mutex
	var waits []string
	rot, err := r.Run(context.Background(), Request{Targets: []Target{{"workers", "new"}}, Timeout: 800 * time.Millisecond}, func(p Progress) {
		if p.Step == "wait" {
			mu.Lock()
			waits = append(waits, p.VM+": "+p.Message)
			mu.Unlock()
		}
	})
	mu.Lock()
	if len(waits) < 2 || !strings.Contains(waits[len(waits)-1], "w2: still waiting for w2 reporting "+newV) || !strings.Contains(waits[len(waits)-1], "no report since the reset") {
		t.Errorf("wait notes %q: want a few, saying what w2 is waited for", waits)
	}
	mu.Unlock()
	if !errors.Is(err, ErrStopped) || rot == nil {
		t.Fatalf("err = %v, want ErrStopped", err)
	}
	for _, s := range []string{"w2", "timed out", "step boot", "stays drained", "rotate again", "docker node update --availability active id-w2", "no report since the reset"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if slices.Contains(w.callLog(), "drain w3") {
		t.Error("w3 was drained after w2 stopped the roll")
	}
	if n := w.node("w2"); n.avail != api.AvailabilityDrain {
		t.Errorf("w2 %s, want left drained", n.avail)
	}
	st := w.rotation()
	if st.State != store.RotationStopped || st.Nodes[1].VM != "w2" || st.Nodes[1].Step != "failed" || !st.Nodes[1].Drained ||
		st.Nodes[2].Step != "pending" || !strings.Contains(st.Message, "stays drained") || rot.State != store.RotationStopped {
		t.Errorf("stored roll %+v", st)
	}
}

// TestInterruptedMidNode: the appliance stopping mid-roll: the roll ends as interrupted, the
// node stays drained, and the record says how to resume.
func TestInterruptedMidNode(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	workers(w, "w1", "w2")
	w.back = func(n *fakeNode, v string) (string, string, bool) { return v, n.id, false }
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	rot, err := w.roller().Run(ctx, Request{Targets: []Target{{"workers", "new"}}, Timeout: time.Minute}, nil)
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "interrupted at step boot") {
		t.Fatalf("err = %v, want stopped: interrupted at step boot", err)
	}
	if st := w.rotation(); rot.State != store.RotationInterrupted || st.State != store.RotationInterrupted || !st.Nodes[0].Drained || st.Nodes[1].Step != "pending" {
		t.Errorf("stored roll %+v", st)
	}
}

// TestDrainedNodeSurvivesAnotherRoll: a roll stops at w2 (drained); w2
// comes back on the new image later; a roll of another group keeps the
// note that w2 is drained by a roll; the workers' roll again only
// activates w2.
func TestDrainedNodeSurvivesAnotherRoll(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	workers(w, "w1", "w2")
	w.add("e1", "edge", api.RoleWorker, "old", oldV)
	w.back = func(n *fakeNode, v string) (string, string, bool) { return v, n.id, n.name != "w2" }
	workersReq := Request{Targets: []Target{{"workers", "new"}}, Timeout: 800 * time.Millisecond}
	if _, err := w.roller().Run(context.Background(), workersReq, nil); !errors.Is(err, ErrStopped) {
		t.Fatalf("first roll: %v, want stopped at w2", err)
	}
	w.mu.Lock()
	w.nodes["w2"].version = newV // it came back after all, but is not ready yet
	w.back = nil
	w.mu.Unlock()

	p, err := w.roller().Plan(context.Background(), Request{Targets: []Target{{"edge", "new"}}})
	if err != nil || len(p.Drained) != 1 || !strings.Contains(strings.Join(p.Lines(), "\n"), "w2 (worker, group workers): left drained by an earlier roll") {
		t.Fatalf("plan of edge: %+v, %v", p, err)
	}
	rot, err := w.roller().Run(context.Background(), Request{Targets: []Target{{"edge", "new"}}, Timeout: 5 * time.Second}, nil)
	if err != nil || len(rot.Nodes) != 2 || rot.Nodes[1].VM != "w2" || !rot.Nodes[1].Drained {
		t.Fatalf("edge roll: %+v, %v; want w2 kept as drained in the record", rot, err)
	}
	before := len(w.callLog())
	workersReq.Timeout = 5 * time.Second
	start := time.Now()
	time.AfterFunc(300*time.Millisecond, func() {
		w.mu.Lock()
		w.nodes["w2"].state = api.NodeReady
		w.mu.Unlock()
	})
	if _, err := w.roller().Run(context.Background(), workersReq, nil); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Error("w2 was activated before it was ready")
	}
	if got := w.callLog()[before:]; !slices.Equal(got, []string{"activate w2"}) {
		t.Errorf("workers again: %q, want only activate w2", got)
	}
}

// TestWrongComeback: a node that boots the wrong version, or comes back
// as a new swarm node, stops the roll at once (no waiting out the
// timeout), drained.
func TestWrongComeback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		back func(n *fakeNode, v string) (string, string, bool)
		want string
	}{
		{"old version", func(n *fakeNode, v string) (string, string, bool) { return oldV, n.id, true }, "came back with image version " + oldV + ", want " + newV},
		{"new node id", func(n *fakeNode, v string) (string, string, bool) { return v, "id-fresh", true }, "docker node rm id-w1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			workers(w, "w1", "w2")
			w.back = tc.back
			start := time.Now()
			_, err := w.roller().Run(context.Background(), Request{Targets: []Target{{"workers", "new"}}, Timeout: time.Minute}, nil)
			if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "stays drained") {
				t.Fatalf("err = %v, want stopped with %q", err, tc.want)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("took %s: a wrong comeback must not wait for the timeout", time.Since(start))
			}
			if slices.Contains(w.callLog(), "drain w2") || w.node("w1").avail != api.AvailabilityDrain {
				t.Errorf("calls %q: want the roll stopped at w1, drained", w.callLog())
			}
		})
	}
}

// TestRollISOGroup: an iso-boot group (known from its VMs' datastore
// images) gets the build's ISO pushed into each VM's CD-ROM instead of a
// netboot image; the store records the ISO's datastore path. A build
// without an ISO is refused.
func TestRollISOGroup(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.add("c1", "cdrom", api.RoleWorker, "[LocalDS_0] swarmboot/old-111.iso", oldV)
	w.add("c2", "cdrom", api.RoleWorker, "[LocalDS_0] swarmboot/old-111.iso", oldV)
	r := w.roller()
	r.ISO = w
	req := Request{Targets: []Target{{"cdrom", "new"}}, Timeout: 5 * time.Second}
	if _, err := r.Plan(context.Background(), req); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "new.iso") {
		t.Fatalf("no new.iso built: %v, want a refusal naming it", err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "new.iso"), []byte("iso"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := r.Plan(context.Background(), req)
	if err != nil || !strings.Contains(p.Lines()[0], "push new.iso to the datastore and put it in the CD-ROM") {
		t.Fatalf("plan: %v, %v", p, err)
	}
	if _, err := r.Run(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"drain c1", "iso c1 new", "reset c1", "activate c1", "drain c2", "iso c2 new", "reset c2", "activate c2"}
	if got := w.callLog(); !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	if n := w.node("c2"); n.version != newV {
		t.Errorf("c2 runs %s, want %s", n.version, newV)
	}
	err = w.st.View(func(tx *store.Tx) error {
		vm, err := tx.VM("c1")
		if err == nil && vm.Image != "[LocalDS_0] swarmboot/new-222.iso" {
			t.Errorf("c1 records image %q, want the new ISO's datastore path", vm.Image)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

package rotate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// progressLog collects a roll's progress lines.
type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *progressLog) add(p Progress) {
	l.mu.Lock()
	l.lines = append(l.lines, p.String())
	l.mu.Unlock()
}

func (l *progressLog) get() []string { l.mu.Lock(); defer l.mu.Unlock(); return slices.Clone(l.lines) }

// index is the first line containing s, or -1.
func index(lines []string, s string) int {
	return slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, s) })
}

// The roll resets a drained node only once the manager's list shows its
// tasks gone (3 → 1 → 0), telling each count.
func TestDrainWaitsForTasks(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	workers(w, "w1", "w2")
	w.nodes["w1"].drainTasks = []int{3, 3, 1, 1, 1, 0}
	var pl progressLog
	if _, err := w.roller().Run(context.Background(), Request{Targets: []Target{{"workers", "new"}}, Timeout: 5 * time.Second}, pl.add); err != nil {
		t.Fatal(err)
	}
	lines := pl.get()
	three, one, none, reset := index(lines, "waiting for 3 tasks to leave w1"), index(lines, "waiting for 1 task to leave w1"),
		index(lines, "no tasks left on w1"), index(lines, "w1 reset:")
	if three < 0 || one < 0 || none < 0 || reset < 0 || three >= one || one >= none || none >= reset {
		t.Errorf("progress %q: want 3 tasks, then 1 task, then none left, then the reset of w1", lines)
	}
	if index(lines, "to leave w2") >= 0 || index(lines, "no tasks left on w2") >= 0 {
		t.Errorf("progress %q: w2 had no tasks, nothing to wait for", lines)
	}
	want := []string{"drain w1", "image w1 new", "reset w1", "activate w1", "drain w2", "image w2 new", "reset w2", "activate w2"}
	if got := w.callLog(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %q\nwant %q (no reset with tasks on the node)", got, want)
	}
}

// Tasks that do not leave within the drain wait stop the roll before the
// reset: the node stays drained and untouched, the next one is not
// started, and the message says how many tasks, where to see them and
// what to do.
func TestDrainWaitTimesOut(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	workers(w, "w1", "w2")
	w.nodes["w1"].drainTasks = []int{2}
	var pl progressLog
	start := time.Now()
	rot, err := w.roller().Run(context.Background(), Request{Targets: []Target{{"workers", "new"}}, Timeout: 5 * time.Second, DrainWait: 150 * time.Millisecond}, pl.add)
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("err %v, want the roll stopped", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 4*time.Second {
		t.Errorf("stopped after %s; want after the drain wait of 150ms, well before the node timeout", d)
	}
	for _, s := range []string{"w1: timed out at step drain", "2 tasks still on swarm node id-w1 after the drain wait of 150ms",
		"docker node ps id-w1", "--drain-timeout 300ms", "stays drained (swarm node id-w1)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q\nlacks %q", err, s)
		}
	}
	if got, want := w.callLog(), []string{"drain w1"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q: no image change, no reset, w2 not started", got, want)
	}
	if n := w.node("w1"); n.avail != api.AvailabilityDrain || n.version != oldV {
		t.Errorf("w1 %+v: want left drained on the old image", n)
	}
	if rot.State != store.RotationStopped || !rot.Nodes[0].Drained || w.rotation().State != store.RotationStopped {
		t.Errorf("roll %+v: want stopped with w1 recorded drained", rot)
	}
	if index(pl.get(), "waiting for 2 tasks to leave w1") < 0 {
		t.Errorf("progress %q: want the count told", pl.get())
	}
}

// An agent too old to count tasks must not block the roll: the roll says
// the tasks could not be counted and goes on.
func TestDrainTasksUnknown(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	workers(w, "w1")
	w.nodes["w1"].tasksUnknown = true
	var pl progressLog
	if _, err := w.roller().Run(context.Background(), Request{Targets: []Target{{"workers", "new"}}, Timeout: 5 * time.Second, DrainWait: time.Hour}, pl.add); err != nil {
		t.Fatal(err)
	}
	lines := pl.get()
	note, reset := index(lines, "the tasks on w1 could not be counted"), index(lines, "w1 reset:")
	if note < 0 || reset < note {
		t.Errorf("progress %q: want the note that the tasks could not be counted, before the reset", lines)
	}
	if n := w.node("w1"); n.version != newV || n.avail != api.AvailabilityActive {
		t.Errorf("w1 %+v: want rolled and active", n)
	}
}

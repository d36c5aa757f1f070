package main

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/debfix"
)

// busyboxImage is a docker import tarball: a static busybox as
// /bin/busybox, nothing else.
func busyboxImage(t testing.TB) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bb, err := debfix.Busybox(ctx)
	if err != nil {
		t.Skipf("needs busybox-static (apt): %v", err)
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// importImage loads tarball into d as ref, running a sleep that ignores
// SIGTERM (PID 1 without a handler), so a stop waits out the grace period.
func importImage(t testing.TB, d *dockerd, tarball []byte, ref string) {
	t.Helper()
	cmd := exec.Command("docker", "-H", d.Host, "import", "-c", `CMD ["/bin/busybox","sleep","3600"]`, "-", ref)
	cmd.Env = append(os.Environ(), "DOCKER_API_VERSION=1.41")
	cmd.Stdin = bytes.NewReader(tarball)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import into %s: %v\n%s", d.IP, err, out)
	}
}

// TestDrainTaskCount: a real manager and worker with real agents; a
// service's two tasks run on the worker. The manager's agent pushes the
// worker's task count (2); after a drain through the appliance the list
// shows the worker drained while its tasks are still stopping (their
// 4 s stop grace period), then 0 once they are gone — what a roll waits
// for before the reset. The manager's agent runs with a 30 s heartbeat
// (the default): a task stopping is no node event, so the 0 must come
// from its reports while a drained node has tasks, within 3 s of the
// containers being gone.
func TestDrainTaskCount(t *testing.T) {
	needLab(t)
	img := busyboxImage(t)
	w := newWakeLab(t, 66)
	for _, m := range []*machine{w.mgr, w.wrk} {
		importImage(t, m.d, img, "sbdrain/busy:1")
	}
	if out, err := w.mgr.d.docker("service", "create", "--detach", "--name", "busy", "--replicas", "2",
		"--constraint", "node.role==worker", "--stop-grace-period", "4s", "sbdrain/busy:1"); err != nil {
		t.Fatalf("service create: %v\n%s", err, out)
	}
	worker := func() api.SwarmNode {
		info, err := w.a.srv.CurrentSwarm(context.Background())
		if err != nil {
			return api.SwarmNode{}
		}
		if i := slices.IndexFunc(info.Nodes, func(n api.SwarmNode) bool { return n.ID == w.id }); i >= 0 {
			return info.Nodes[i]
		}
		return api.SwarmNode{}
	}
	deadline := time.Now().Add(90 * time.Second)
	running := func() int {
		out, _ := w.wrk.d.docker("ps", "-q", "--filter", "status=running")
		return len(strings.Fields(out))
	}
	// Both containers running on the worker (a task still preparing would
	// be stopped at once, not after its grace period), and listed.
	for n := worker(); !(n.TasksKnown && n.Tasks == 2) || running() != 2; n = worker() {
		if time.Now().After(deadline) {
			out, _ := w.mgr.d.docker("service", "ps", "--no-trunc", "busy")
			t.Fatalf("the appliance lists the worker with %d tasks (known %v), %d containers run there; want 2 and 2\n%s", n.Tasks, n.TasksKnown, running(), out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.restartManager(t, 30*time.Second, false)
	info, err := w.a.srv.CurrentSwarm(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(info.Nodes, func(n api.SwarmNode) bool { return n.Role == api.RoleManager }); i < 0 {
		t.Fatal("no manager listed")
	} else if m := info.Nodes[i]; !m.TasksKnown || m.Tasks != 0 {
		t.Errorf("manager listed with %d tasks (known %v), want 0 known (the service is constrained to workers)", m.Tasks, m.TasksKnown)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	if err := w.a.srv.SetAvailability(ctx, w.id, api.AvailabilityDrain); err != nil {
		t.Fatal(err)
	}
	var stopping, gone, stopped time.Duration
	var seen []int
	for gone == 0 {
		if out, err := w.wrk.d.docker("ps", "-q"); stopped == 0 && err == nil && strings.TrimSpace(out) == "" {
			stopped = time.Since(start)
		}
		n := worker()
		if n.Availability == api.AvailabilityDrain && n.TasksKnown {
			if len(seen) == 0 || seen[len(seen)-1] != n.Tasks {
				seen = append(seen, n.Tasks)
			}
			if n.Tasks > 0 && stopping == 0 {
				stopping = time.Since(start)
			}
			if n.Tasks == 0 {
				gone = time.Since(start)
			}
		}
		if ctx.Err() != nil {
			out, _ := w.mgr.d.docker("service", "ps", "--no-trunc", "busy")
			t.Fatalf("the worker's tasks did not leave within 90 s of the drain (counts seen: %v)\n%s", seen, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("drained: listed with tasks still stopping at %v, containers gone at %v, no tasks listed at %v (counts seen: %v)", stopping, stopped, gone, seen)
	if stopped != 0 && gone-stopped > 3*time.Second {
		t.Errorf("no tasks listed %v after the worker's containers were gone, want within 3 s (not a 30 s heartbeat later)", (gone - stopped).Round(time.Millisecond))
	}
	if stopping == 0 {
		t.Errorf("the list never showed the drained worker with its stopping tasks (counts %v): a roll would not have waited", seen)
	}
	if gone < 3*time.Second {
		t.Errorf("tasks listed gone %v after the drain, before their 4 s grace period could end", gone)
	}
	if out, err := w.wrk.d.docker("ps", "-q"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("containers still running on the worker once listed without tasks: %q, %v", out, err)
	}
}

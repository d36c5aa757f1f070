package fleet

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"

	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// benchEnv is a simulator, a client, a store and an ISO already pushed.
type benchEnv struct {
	sim  *vsphere.Sim
	vs   *vsphere.Client
	st   *store.Store
	site *site.Site
	iso  string // datastore path of the pushed ISO
	once sync.Once
}

// close stops the simulator and the store now (not at the benchmark's
// end: idle simulators' heaps would grow the next rounds' GC work).
func (e *benchEnv) close() {
	e.once.Do(func() {
		e.vs.Close(context.Background())
		e.st.Close()
		e.sim.Close()
		// b.Cleanup keeps e until the benchmark ends: drop the simulator
		// (its inventory) so later rounds do not carry it in their heap.
		e.sim, e.vs, e.st = nil, nil, nil
	})
}

func runtimeGC() { runtime.GC() }

func newBenchEnv(b *testing.B, count int) *benchEnv {
	b.Helper()
	sim, err := vsphere.StartSim()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	vs, err := vsphere.Connect(ctx, sim.VCenter, nil)
	if err != nil {
		sim.Close()
		b.Fatal(err)
	}
	dir := b.TempDir()
	st, err := store.Open(store.DefaultPath(dir))
	if err != nil {
		sim.Close()
		b.Fatal(err)
	}
	e := &benchEnv{sim: sim, vs: vs, st: st}
	b.Cleanup(e.close)
	local := filepath.Join(dir, "docker.iso")
	os.WriteFile(local, bytes.Repeat([]byte("iso"), 100000), 0o644)
	s := sim.Site()
	s.Path = filepath.Join(dir, "swarmboot.yml")
	s.Groups = []site.Group{{Name: "workers", Pattern: "tf-sw-{n}", Count: count, CPUs: 2, MemoryMiB: 1024, DiskGiB: 10,
		GuestID: "otherLinux64Guest", Firmware: "bios", Boot: "iso", Role: "worker", Image: "docker.iso"}}
	pl, err := vs.Resolve(ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := vs.EnsureFolder(ctx, pl); err != nil {
		b.Fatal(err)
	}
	r, err := vs.Push(ctx, pl.Datacenter, pl.Datastore, local, nil)
	if err != nil {
		b.Fatal(err)
	}
	e.site, e.iso = s, r.File
	return e
}

// BenchmarkApply100VsGovc creates 100 VMs with apply (connect, plan,
// tokens, store records, power on) and the same 100 with `govc vm.create
// -on` in a serial loop, each side on a fresh simulator of the same model
// with the folder and ISO already there, after an untimed warm-up of both.
// It runs $SWARMBOOT_BENCH_ROUNDS rounds (default 5), alternating which
// side goes first, and reports the median ratio of apply's time to govc's
// (goal <= 0.25), both times, each side's CPU (ours: this process, client
// and simulator; govc: its processes plus this process's simulator) and
// the vCenter round trips per VM of each side. $SWARMBOOT_BENCH_PROFILE_DIR
// gets a CPU profile of each apply (apply-N.prof; the simulator included).
func BenchmarkApply100VsGovc(b *testing.B) {
	govc := filepath.Join(b.TempDir(), "govc")
	build := exec.Command("go", "build", "-o", govc, "github.com/swarmboot/swarmboot/appliance/fleet/internal/govc")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build govc: %v\n%s", err, out)
	}
	const n = 100
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("SWARMBOOT_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	// govc keeps its sessions and debug traces under $GOVMOMI_HOME: a
	// directory of this run, not ~/.govmomi.
	home := b.TempDir()
	govcRT := warmUp(b, govc, home)
	b.ResetTimer()
	b.StopTimer() // runApply times apply only
	for i := 0; i < b.N; i++ {
		var ours, theirs []sideRun
		for r := 0; r < rounds; r++ {
			if r%2 == 0 {
				ours = append(ours, runApply(b, n))
				theirs = append(theirs, runGovc(b, govc, home, n))
			} else {
				theirs = append(theirs, runGovc(b, govc, home, n))
				ours = append(ours, runApply(b, n))
			}
		}
		ratios := make([]float64, rounds)
		for r := range ratios {
			ratios[r] = ours[r].wall.Seconds() / theirs[r].wall.Seconds()
			b.Logf("round %d: apply %v (cpu %v, %.2f rt/VM), govc %v (cpu %v), ratio %.3fx", r+1,
				ours[r].wall.Round(time.Millisecond), ours[r].cpu.Round(time.Millisecond), float64(ours[r].rt)/n,
				theirs[r].wall.Round(time.Millisecond), theirs[r].cpu.Round(time.Millisecond), ratios[r])
		}
		ratio := median(ratios)
		b.ReportMetric(ratio, "x-vs-govc")
		b.ReportMetric(slices.Min(ratios), "x-min")
		b.ReportMetric(slices.Max(ratios), "x-max")
		b.ReportMetric(medianOf(ours, func(s sideRun) float64 { return s.wall.Seconds() }), "apply-s")
		b.ReportMetric(medianOf(theirs, func(s sideRun) float64 { return s.wall.Seconds() }), "govc-s")
		b.ReportMetric(medianOf(ours, func(s sideRun) float64 { return s.cpu.Seconds() }), "apply-cpu-s")
		b.ReportMetric(medianOf(theirs, func(s sideRun) float64 { return s.cpu.Seconds() }), "govc-cpu-s")
		cpuRatio := medianOf(ours, func(s sideRun) float64 { return s.cpu.Seconds() }) / medianOf(theirs, func(s sideRun) float64 { return s.cpu.Seconds() })
		b.ReportMetric(cpuRatio, "cpu-x-vs-govc")
		rt := medianOf(ours, func(s sideRun) float64 { return float64(s.rt) / n })
		b.ReportMetric(rt, "rt/VM")
		b.ReportMetric(float64(govcRT), "govc-rt/VM")
		b.Logf("apply of %d VMs vs govc vm.create serial loop, median of %d rounds: %.3fx (%.3f-%.3f; goal <= 0.25x); CPU %.3fx; round trips per VM: apply %.2f, govc %d",
			n, rounds, ratio, slices.Min(ratios), slices.Max(ratios), cpuRatio, rt, govcRT)
	}
}

func mustFolder(b *testing.B, e *benchEnv) *object.Folder {
	b.Helper()
	ctx := context.Background()
	pl, err := e.vs.Resolve(ctx, e.site)
	if err != nil {
		b.Fatal(err)
	}
	f, err := e.vs.Folder(ctx, pl)
	if err != nil || f == nil {
		b.Fatalf("folder: %v", err)
	}
	return f
}

// BenchmarkReplan1000 plans again over 1,000 VMs that already match the
// site file (goal < 2 s).
func BenchmarkReplan1000(b *testing.B) {
	const n = 1000
	e := newBenchEnv(b, n)
	f := &Fleet{Site: e.site, VS: e.vs, Store: e.st, Parallel: 16}
	ctx := context.Background()
	p, err := f.Plan(ctx)
	if err != nil {
		b.Fatal(err)
	}
	setup := time.Now()
	if _, err := f.Apply(ctx, p, ApplyOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: applied %d VMs in %v", n, time.Since(setup).Round(time.Millisecond))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		p, err := f.Plan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if p.HasChanges() || len(p.Unchanged) != n {
			b.Fatalf("re-plan: changes %v, unchanged %d", p.HasChanges(), len(p.Unchanged))
		}
		b.ReportMetric(d.Seconds(), "replan-s")
		b.ReportMetric(d.Seconds()/2, "x-vs-goal")
		b.Logf("no-op re-plan of %d VMs: %v (goal < 2s)", n, d.Round(time.Millisecond))
	}
}

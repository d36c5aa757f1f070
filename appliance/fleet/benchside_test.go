package fleet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/soap"

	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// sideRun is one side's run of the apply benchmark.
type sideRun struct {
	wall, cpu time.Duration
	rt        int64 // vCenter round trips (ours only)
}

// countRT counts the SOAP round trips of a vsphere.Client.
type countRT struct {
	soap.RoundTripper
	n atomic.Int64
}

func (c *countRT) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(ctx, req, res)
}

// cpuTime is the CPU (user+system) of this process (who =
// RUSAGE_SELF) or of its waited-for children (RUSAGE_CHILDREN).
func cpuTime(b *testing.B, who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runApply applies n VMs on a fresh simulator: connect, plan, apply, as
// `swarmboot apply` does.
func runApply(b *testing.B, n int) sideRun {
	e := newBenchEnv(b, n)
	defer e.close()
	runtimeGC()
	ctx := context.Background()
	if dir := os.Getenv("SWARMBOOT_BENCH_PROFILE_DIR"); dir != "" {
		applyRuns++
		stop := startProfile(b, filepath.Join(dir, fmt.Sprintf("apply-%d.prof", applyRuns)))
		defer stop()
	}
	cpu0 := cpuTime(b, syscall.RUSAGE_SELF)
	b.StartTimer()
	start := time.Now()
	vs, err := vsphere.Connect(ctx, e.site.VCenter, nil)
	if err != nil {
		b.Fatal(err)
	}
	rt := &countRT{RoundTripper: vs.VC.RoundTripper}
	vs.VC.RoundTripper = rt
	f := &Fleet{Site: e.site, VS: vs, Store: e.st}
	p, err := f.Plan(ctx)
	if err != nil {
		b.Fatal(err)
	}
	r, err := f.Apply(ctx, p, ApplyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	wall := time.Since(start)
	b.StopTimer()
	cpu := cpuTime(b, syscall.RUSAGE_SELF) - cpu0
	vs.Close(ctx)
	if len(r.Created) != n {
		b.Fatalf("apply created %d VMs, want %d", len(r.Created), n)
	}
	return sideRun{wall: wall, cpu: cpu, rt: rt.n.Load()}
}

// applyRuns numbers the CPU profiles of runApply.
var applyRuns int

// startProfile writes a CPU profile of this process (our client and the
// simulator) to path until the returned stop is called.
func startProfile(b *testing.B, path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	b.Logf("CPU profile of apply: %s", path)
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// govcEnv is the environment of govc against e's simulator.
func govcEnv(e *benchEnv, home string) []string {
	return append(os.Environ(), "GOVMOMI_HOME="+home, "GOVC_URL="+e.sim.VCenter.URL, "GOVC_USERNAME="+e.sim.VCenter.User,
		"GOVC_PASSWORD="+e.sim.VCenter.Password, "GOVC_TLS_CA_CERTS="+e.sim.VCenter.CA,
		"GOVC_DATACENTER=DC0", "GOVC_DATASTORE=LocalDS_0", "GOVC_RESOURCE_POOL=DC0_C0/Resources",
		"GOVC_FOLDER=/DC0/vm/TERRAFORM/Linux/linuxkit-dev", "GOVC_NETWORK=VM Network")
}

func govcCreate(b *testing.B, govc string, env []string, name, iso string, extra ...string) {
	args := append([]string{"vm.create"}, extra...)
	args = append(args, "-c", "2", "-m", "1024", "-g", "otherLinux64Guest", "-net.adapter", "vmxnet3", "-disk", "10GB",
		"-firmware", "bios", "-iso", iso, "-on=true", name)
	cmd := exec.Command(govc, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("govc vm.create %s: %v\n%s", name, err, out)
	}
}

// runGovc creates the same n VMs with govc vm.create in a serial loop on a
// fresh simulator. Its CPU is govc's processes' plus this process's (the
// simulator answering them).
func runGovc(b *testing.B, govc, home string, n int) sideRun {
	e := newBenchEnv(b, n)
	defer e.close()
	runtimeGC()
	env := govcEnv(e, home)
	self0, kids0 := cpuTime(b, syscall.RUSAGE_SELF), cpuTime(b, syscall.RUSAGE_CHILDREN)
	start := time.Now()
	for j := 1; j <= n; j++ {
		govcCreate(b, govc, env, fmt.Sprintf("tf-sw-%d", j), e.iso)
	}
	wall := time.Since(start)
	cpu := cpuTime(b, syscall.RUSAGE_SELF) - self0 + cpuTime(b, syscall.RUSAGE_CHILDREN) - kids0
	if vms, err := e.vs.List(context.Background(), mustFolder(b, e)); err != nil || len(vms) != n {
		b.Fatalf("govc made %d VMs (%v)", len(vms), err)
	}
	return sideRun{wall: wall, cpu: cpu}
}

// warmUp runs both sides once, untimed, on throwaway simulators (page
// cache, code paths, govc's binary), and returns the round trips of one
// govc vm.create, counted from its -debug trace.
func warmUp(b *testing.B, govc, home string) int {
	runApply(b, 5)
	e := newBenchEnv(b, 1)
	defer e.close()
	env := govcEnv(e, home)
	govcCreate(b, govc, env, "warm-1", e.iso)
	dbg := filepath.Join(home, "debug-trace")
	govcCreate(b, govc, append(env, "GOVC_DEBUG_PATH="+dbg), "warm-2", e.iso, "-debug")
	n := 0
	filepath.WalkDir(dbg, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".req.xml") {
			n++
		}
		return nil
	})
	if n == 0 {
		b.Logf("govc -debug left no *.req.xml in %s: round trips of govc not counted", dbg)
	}
	return n
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianOf(runs []sideRun, f func(sideRun) float64) float64 {
	xs := make([]float64, len(runs))
	for i, r := range runs {
		xs[i] = f(r)
	}
	return median(xs)
}

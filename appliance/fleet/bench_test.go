package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
}

func newBenchEnv(b *testing.B, count int) *benchEnv {
	b.Helper()
	sim, err := vsphere.StartSim()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sim.Close)
	ctx := context.Background()
	vs, err := vsphere.Connect(ctx, sim.VCenter, nil)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	st, err := store.Open(store.DefaultPath(dir))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
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
	return &benchEnv{sim: sim, vs: vs, st: st, site: s, iso: r.File}
}

// BenchmarkApply100VsGovc creates 100 VMs with apply (plan, tokens, store
// records, power on) and the same 100 with `govc vm.create` in a serial
// loop, each on a fresh simulator, and reports apply's time as a multiple
// of govc's (goal ≤ 0.25).
func BenchmarkApply100VsGovc(b *testing.B) {
	govc := filepath.Join(b.TempDir(), "govc")
	build := exec.Command("go", "build", "-o", govc, "github.com/swarmboot/swarmboot/appliance/fleet/internal/govc")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build govc: %v\n%s", err, out)
	}
	const n = 100
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ours := newBenchEnv(b, n)
		f := &Fleet{Site: ours.site, VS: ours.vs, Store: ours.st}
		b.StartTimer()
		start := time.Now()
		p, err := f.Plan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r, err := f.Apply(ctx, p, ApplyOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ourTime := time.Since(start)
		b.StopTimer()
		if len(r.Created) != n {
			b.Fatalf("apply created %d VMs, want %d", len(r.Created), n)
		}

		ref := newBenchEnv(b, n)
		env := append(os.Environ(), "GOVC_URL="+ref.sim.VCenter.URL, "GOVC_USERNAME="+ref.sim.VCenter.User,
			"GOVC_PASSWORD="+ref.sim.VCenter.Password, "GOVC_TLS_CA_CERTS="+ref.sim.VCenter.CA,
			"GOVC_DATACENTER=DC0", "GOVC_DATASTORE=LocalDS_0", "GOVC_RESOURCE_POOL=DC0_C0/Resources",
			"GOVC_FOLDER=/DC0/vm/TERRAFORM/Linux/linuxkit-dev", "GOVC_NETWORK=VM Network")
		start = time.Now()
		for j := 1; j <= n; j++ {
			cmd := exec.Command(govc, "vm.create", "-c", "2", "-m", "1024", "-g", "otherLinux64Guest",
				"-net.adapter", "vmxnet3", "-disk", "10GB", "-firmware", "bios", "-iso", ref.iso, "-on=true",
				fmt.Sprintf("tf-sw-%d", j))
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("govc vm.create tf-sw-%d: %v\n%s", j, err, out)
			}
		}
		govcTime := time.Since(start)
		if vms, err := ref.vs.List(ctx, mustFolder(b, ref)); err != nil || len(vms) != n {
			b.Fatalf("govc made %d VMs (%v)", len(vms), err)
		}
		ratio := ourTime.Seconds() / govcTime.Seconds()
		b.ReportMetric(ratio, "x-vs-govc")
		b.ReportMetric(ourTime.Seconds(), "apply-s")
		b.ReportMetric(govcTime.Seconds(), "govc-s")
		b.Logf("apply of %d VMs: %v; govc vm.create serial loop: %v; ratio %.3fx (goal <= 0.25x)", n, ourTime.Round(time.Millisecond), govcTime.Round(time.Millisecond), ratio)
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

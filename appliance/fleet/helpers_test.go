package fleet

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmware/govmomi/vim25/mo"

	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

type env struct {
	sim   *vsphere.Sim
	vs    *vsphere.Client
	store *store.Store
	site  *site.Site
	logs  *testlog.Buffer
	dir   string
}

// newEnv starts a simulator and a store, with a site of one iso/bios
// manager and three pxe/efi workers.
func newEnv(t *testing.T) *env {
	t.Helper()
	sim, err := vsphere.StartSim()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	ctx := context.Background()
	logs := &testlog.Buffer{}
	vs, err := vsphere.Connect(ctx, sim.VCenter, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close(context.Background()) })
	dir := t.TempDir()
	st, err := store.Open(store.DefaultPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	iso := filepath.Join(dir, "docker.iso")
	os.WriteFile(iso, bytes.Repeat([]byte("iso"), 50000), 0o644)
	s := sim.Site()
	s.Path = filepath.Join(dir, "swarmboot.yml")
	s.Groups = []site.Group{
		{Name: "managers", Pattern: "tf-sw-m{n}", Count: 1, CPUs: 2, MemoryMiB: 2048, DiskGiB: 10, GuestID: "otherLinux64Guest", Firmware: "bios", Boot: "iso", Role: "manager", Image: "docker.iso"},
		{Name: "workers", Pattern: "tf-sw-{n}", Count: 3, CPUs: 2, MemoryMiB: 1024, DiskGiB: 10, GuestID: "otherLinux64Guest", Firmware: "efi", Boot: "pxe", Role: "worker"},
	}
	return &env{sim: sim, vs: vs, store: st, site: s, logs: logs, dir: dir}
}

// fleet returns a Fleet on e. Parallel is 1: govmomi's simulator races on
// its own package state when VMs are created or destroyed concurrently
// (simulator configureDevice/AssignController vs the property collector),
// which -race reports. Parallel applies are exercised by parallel_test.go
// (built without -race) and the benchmark.
func (e *env) fleet() *Fleet {
	return &Fleet{Site: e.site, VS: e.vs, Store: e.store, Log: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Progress: func(s string) { e.logs.Write([]byte("progress: " + s + "\n")) }, Parallel: 1, destroyParallel: 1}
}

func (e *env) plan(t *testing.T) *Plan {
	t.Helper()
	p, err := e.fleet().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) apply(t *testing.T) *Result {
	t.Helper()
	f := e.fleet()
	p, err := f.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Apply(context.Background(), p, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// vms lists every VM in the site's folder.
func (e *env) vms(t *testing.T) []vsphere.VM {
	t.Helper()
	ctx := context.Background()
	p, err := e.vs.Resolve(ctx, e.site)
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.vs.Folder(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	l, err := e.vs.List(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// guestToken reads guestinfo.swarmboot.token of vm.
func (e *env) guestToken(t *testing.T, vm *vsphere.VM) string {
	t.Helper()
	var m mo.VirtualMachine
	if err := e.vs.Object(vm).Properties(context.Background(), vm.Ref, []string{"config.extraConfig"}, &m); err != nil {
		t.Fatal(err)
	}
	for _, o := range m.Config.ExtraConfig {
		if ov := o.GetOptionValue(); ov.Key == vsphere.KeyToken {
			s, _ := ov.Value.(string)
			return s
		}
	}
	return ""
}

// checkConverged asserts vCenter and the store hold exactly the site's VMs:
// each once, ours, powered on, recorded with MAC/UUIDs, with exactly the
// token in its guestinfo stored (hashed, bound to its BIOS UUID) and no
// other token.
func (e *env) checkConverged(t *testing.T) {
	t.Helper()
	want := map[string]*site.Group{}
	for i := range e.site.Groups {
		g := &e.site.Groups[i]
		for n := 1; n <= g.Count; n++ {
			want[g.VMName(n)] = g
		}
	}
	vms := e.vms(t)
	// The simulator derives MACs from three characters of the BIOS UUID, so
	// larger fleets can share one (real vCenter keeps them unique).
	macs := map[string]int{}
	for i := range vms {
		if full, err := e.vs.Get(context.Background(), vms[i].Ref); err == nil {
			macs[full.MAC]++
		}
	}
	seen := map[string]bool{}
	for i := range vms {
		vm, err := e.vs.Get(context.Background(), vms[i].Ref) // with MAC and CD-ROM
		if err != nil {
			t.Fatal(err)
		}
		if seen[vm.Name] {
			t.Errorf("duplicate VM %s", vm.Name)
		}
		seen[vm.Name] = true
		g := want[vm.Name]
		if g == nil {
			t.Errorf("leaked VM %s", vm.Name)
			continue
		}
		if !vm.Managed || vm.Group != g.Name || vm.PowerState != "poweredOn" || vm.CPUs != g.CPUs || vm.MemoryMiB != g.MemoryMiB {
			t.Errorf("%s not converged: %+v", vm.Name, vm)
		}
		first := map[string]string{"iso": "cdrom", "pxe": "ethernet"}[g.Boot]
		if vm.BootFirst != first {
			t.Errorf("%s boots %q first, want %s", vm.Name, vm.BootFirst, first)
		}
		tok := e.guestToken(t, vm)
		e.store.View(func(tx *store.Tx) error {
			r, err := tx.VM(vm.Name)
			if err != nil {
				t.Errorf("%s: no store record: %v", vm.Name, err)
				return nil
			}
			if r.MAC != vm.MAC || r.BIOSUUID != vm.BIOSUUID || r.InstanceUUID != vm.InstanceUUID || r.MoRef != vm.Ref.Value || r.Group != g.Name {
				t.Errorf("%s: record %+v does not match vCenter %+v", vm.Name, r, vm)
			}
			if byMAC, err := tx.VMByMAC(vm.MAC); macs[vm.MAC] == 1 && (err != nil || byMAC.Name != vm.Name) {
				t.Errorf("%s: VMByMAC(%s) = %v, %v", vm.Name, vm.MAC, byMAC, err)
			}
			toks, _ := tx.TokensForVM(vm.Name)
			if len(toks) != 1 {
				t.Errorf("%s: %d tokens stored, want 1", vm.Name, len(toks))
			}
			for _, tk := range toks {
				if tk.BIOSUUID != vm.BIOSUUID || tk.Hash != store.HashToken(tok) {
					t.Errorf("%s: stored token not the one in guestinfo / not bound to BIOS UUID %s: %+v", vm.Name, vm.BIOSUUID, tk)
				}
			}
			return nil
		})
	}
	for n := range want {
		if !seen[n] {
			t.Errorf("missing VM %s", n)
		}
	}
	e.store.View(func(tx *store.Tx) error {
		recs, _ := tx.VMs()
		if len(recs) != len(want) {
			t.Errorf("store has %d VM records, want %d", len(recs), len(want))
		}
		return nil
	})
}

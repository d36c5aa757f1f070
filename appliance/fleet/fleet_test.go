package fleet

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

func TestPlanApplyDestroyRoundTrip(t *testing.T) {
	// Not parallel: simulators share package state.
	e := newEnv(t)
	ctx := context.Background()

	p := e.plan(t)
	if !p.HasChanges() || p.Count(Create) != 4 || len(p.Pushes) != 1 || p.Folder != nil {
		t.Fatalf("first plan: %d creates, %d pushes, folder %v", p.Count(Create), len(p.Pushes), p.Folder)
	}
	var out bytes.Buffer
	p.Write(&out)
	for _, want := range []string{`+ folder "/DC0/vm/TERRAFORM/Linux/linuxkit-dev"`, "+ image ", `+ vm "tf-sw-m1"`, `+ vm "tf-sw-3"`, `firmware = "efi"`, "Plan: 4 to add, 0 to change, 0 to destroy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, out.String())
		}
	}
	r := e.apply(t)
	if len(r.Created) != 4 || len(r.Pushed) != 1 || !strings.HasPrefix(r.Pushed[0], "[LocalDS_0] swarmboot/docker-") {
		t.Fatalf("apply result %+v", r)
	}
	e.checkConverged(t)
	for _, listed := range e.vms(t) {
		vm, err := e.vs.Get(ctx, listed.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if vm.Name == "tf-sw-m1" && vm.ISO != r.Pushed[0] {
			t.Errorf("manager CD-ROM %q, want the pushed %s", vm.ISO, r.Pushed[0])
		}
		if vm.Name == "tf-sw-1" && (vm.Firmware != "efi" || vm.ISO != "") {
			t.Errorf("worker: %+v", vm)
		}
	}

	// Idempotent: nothing to do, and apply does nothing.
	p = e.plan(t)
	out.Reset()
	p.Write(&out)
	if p.HasChanges() || !strings.Contains(out.String(), "No changes") || len(p.Unchanged) != 4 {
		t.Fatalf("re-plan not empty:\n%s", out.String())
	}
	if r := e.apply(t); len(r.Created)+len(r.Deleted)+len(r.Updated)+len(r.PoweredOn)+len(r.Pushed) != 0 {
		t.Fatalf("re-apply did something: %+v", r)
	}
	e.checkConverged(t)

	// Shrink workers to 1 (highest-numbered go), change the running manager's CPUs.
	e.site.Groups[1].Count = 1
	e.site.Groups[0].CPUs = 4
	p = e.plan(t)
	out.Reset()
	p.Write(&out)
	if p.Count(Delete) != 2 || p.Changes[0].Name != "tf-sw-3" || p.Changes[1].Name != "tf-sw-2" || p.Count(Rotate) != 1 {
		t.Fatalf("shrink plan:\n%s", out.String())
	}
	for _, want := range []string{`- vm "tf-sw-3"`, "group workers shrinks to 1", `! vm "tf-sw-m1"`, "cpus 2 → 4", "rotate"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan output lacks %q:\n%s", want, out.String())
		}
	}
	r = e.apply(t)
	if strings.Join(r.Deleted, ",") != "tf-sw-2,tf-sw-3" || len(r.Rotate) != 1 {
		t.Fatalf("shrink apply: %+v", r)
	}
	// Powered off, the manager is reconfigured in place and powered on again.
	for _, vm := range e.vms(t) {
		if vm.Name == "tf-sw-m1" {
			if err := e.vs.PowerOff(ctx, &vm); err != nil {
				t.Fatal(err)
			}
		}
	}
	p = e.plan(t)
	if p.Count(Update) != 1 || p.Count(Rotate) != 0 {
		t.Fatalf("plan after power off: %+v", p.Changes)
	}
	if r := e.apply(t); len(r.Updated) != 1 {
		t.Fatalf("update apply: %+v", r)
	}
	e.checkConverged(t)
	e.store.View(func(tx *store.Tx) error {
		if toks, _ := tx.TokensForVM("tf-sw-3"); len(toks) != 0 {
			t.Errorf("destroyed VM kept %d tokens", len(toks))
		}
		return nil
	})

	// Destroy a group, then everything.
	f := e.fleet()
	vms, err := f.Targets(ctx, Selection{Groups: []string{"workers"}})
	if err != nil || len(vms) != 1 || vms[0].Name != "tf-sw-1" {
		t.Fatalf("Targets(workers) = %v, %v", vms, err)
	}
	if _, err := f.Destroy(ctx, vms); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Targets(ctx, Selection{Groups: []string{"nope"}}); err == nil {
		t.Error("destroy --group of an unknown group accepted")
	}
	vms, _ = f.Targets(ctx, Selection{})
	if names, err := f.Destroy(ctx, vms); err != nil || len(names) != 1 {
		t.Fatalf("destroy all: %v %v", names, err)
	}
	if left := e.vms(t); len(left) != 0 {
		t.Errorf("VMs left: %+v", left)
	}
	e.store.View(func(tx *store.Tx) error {
		if recs, _ := tx.VMs(); len(recs) != 0 {
			t.Errorf("records left: %+v", recs)
		}
		return nil
	})
}

func TestUnmanagedVMsAreNeverTouched(t *testing.T) {
	// Not parallel: simulators share package state.
	e := newEnv(t)
	ctx := context.Background()
	e.apply(t)
	pl, _ := e.vs.Resolve(ctx, e.site)
	folder, _ := e.vs.Folder(ctx, pl)
	// Someone makes VMs by hand in our folder: one with a name we want.
	for _, n := range []string{"hand-made", "tf-sw-4"} {
		task, err := folder.CreateVM(ctx, types.VirtualMachineConfigSpec{Name: n, GuestId: "otherLinux64Guest",
			Files: &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"}}, pl.Pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.site.Groups[1].Count = 4
	p := e.plan(t)
	var out bytes.Buffer
	p.Write(&out)
	if len(p.Conflicts) != 1 || !strings.Contains(out.String(), `! vm "tf-sw-4" exists`) {
		t.Fatalf("conflict not reported:\n%s", out.String())
	}
	if _, err := e.fleet().Apply(ctx, p, ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "not created by swarmboot") {
		t.Fatalf("apply over a foreign VM: %v", err)
	}
	e.site.Groups[1].Count = 3
	f := e.fleet()
	if _, err := f.Targets(ctx, Selection{Names: []string{"hand-made"}}); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("destroy of a foreign VM: %v", err)
	}
	vms, _ := f.Targets(ctx, Selection{})
	if _, err := f.Destroy(ctx, vms); err != nil {
		t.Fatal(err)
	}
	left := e.vms(t)
	if len(left) != 2 || left[0].Name != "hand-made" || left[1].Name != "tf-sw-4" {
		t.Errorf("foreign VMs touched: %+v", left)
	}
}

func TestTokensHashedAndNeverLogged(t *testing.T) {
	// Not parallel: simulators share package state.
	e := newEnv(t)
	e.apply(t)
	db, err := os.ReadFile(e.store.Path())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	e.plan(t).Write(&out)
	n := 0
	for _, vm := range e.vms(t) {
		tok := e.guestToken(t, &vm)
		if len(tok) < 40 {
			t.Fatalf("%s: token %q too short", vm.Name, tok)
		}
		n++
		for where, text := range map[string]string{"logs": e.logs.String(), "plan": out.String(), "store file": string(db)} {
			if strings.Contains(text, tok) {
				t.Errorf("%s: token appears in the %s", vm.Name, where)
			}
		}
		e.store.View(func(tx *store.Tx) error {
			if _, err := tx.TokenByHash(store.HashToken(tok)); err != nil {
				t.Errorf("%s: hash of its token not stored: %v", vm.Name, err)
			}
			return nil
		})
	}
	if n != 4 {
		t.Fatalf("%d VMs", n)
	}
	if !strings.Contains(e.logs.String(), "created") {
		t.Fatalf("no logs captured at all: %q", e.logs.String())
	}
}

func TestApplyFaultsAreOneLineAndRerunConverges(t *testing.T) {
	// Not parallel: simulators share package state.
	e := newEnv(t)
	ctx := context.Background()
	e.sim.AddFault(&simulator.FaultInjectionRule{MethodName: "CreateVM_Task", ObjectType: "*", ObjectName: "*", Probability: 1,
		FaultType: simulator.FaultTypeCustom, Fault: &types.NoDiskSpace{Datastore: "LocalDS_0"}, Enabled: true, SkipCount: 2})
	f := e.fleet()
	f.Parallel = 1
	p, err := f.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Apply(ctx, p, ApplyOptions{})
	if !errors.Is(err, vsphere.ErrNoSpace) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "create VM tf-sw-") || !strings.Contains(err.Error(), "free space") {
		t.Fatalf("no-space apply error: %v", err)
	}
	e.sim.ClearFaults()
	e.apply(t)
	e.checkConverged(t)
}

func TestApplyRestoresLostStoreRecords(t *testing.T) {
	e := newEnv(t)
	e.apply(t)
	// The appliance lost its records (a restored backup, say): vCenter still
	// has the VMs; a no-change apply records them again from vCenter.
	e.store.Update(func(tx *store.Tx) error {
		vms, _ := tx.VMs()
		for _, vm := range vms {
			tx.DeleteVM(vm.Name)
		}
		return nil
	})
	p := e.plan(t)
	if p.HasChanges() {
		t.Fatalf("plan: %+v", p.Changes)
	}
	if _, err := e.fleet().Apply(context.Background(), p, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	e.checkConverged(t)
}

func TestImageAlreadyOnDatastore(t *testing.T) {
	e := newEnv(t)
	e.site.Groups[0].Image = "[LocalDS_0] docker/docker.iso"
	_, err := e.fleet().Plan(context.Background())
	if err == nil || !strings.Contains(err.Error(), "group managers") || !strings.Contains(err.Error(), "swarmboot push") {
		t.Fatalf("plan with a missing datastore ISO: %v", err)
	}
	ctx := context.Background()
	pl, err := e.vs.Resolve(ctx, e.site)
	if err != nil {
		t.Fatal(err)
	}
	fm := object.NewFileManager(e.vs.VC)
	if err := fm.MakeDirectory(ctx, "[LocalDS_0] docker", pl.Datacenter, true); err != nil {
		t.Fatal(err)
	}
	if err := pl.Datastore.Upload(ctx, strings.NewReader("iso bytes"), "docker/docker.iso", nil); err != nil {
		t.Fatal(err)
	}
	p := e.plan(t)
	if len(p.Pushes) != 0 || p.Count(Create) != 4 {
		t.Fatalf("plan: pushes %d, creates %d", len(p.Pushes), p.Count(Create))
	}
	e.apply(t)
	for _, listed := range e.vms(t) {
		if listed.Name == "tf-sw-m1" {
			vm, _ := e.vs.Get(ctx, listed.Ref)
			if vm.ISO != "[LocalDS_0] docker/docker.iso" {
				t.Errorf("CD-ROM %q", vm.ISO)
			}
		}
	}
	e.checkConverged(t)
}

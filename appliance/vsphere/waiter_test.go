package vsphere

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// TestWaiterSharesRoundsAndReportsFaults creates VMs through a Waiter, then
// waits for many reconfigure tasks at once: successes, a task vCenter fails
// and a task it does not know, each with its own result.
func TestWaiterSharesRoundsAndReportsFaults(t *testing.T) {
	// Not parallel: simulators share package state.
	_, c, p, folder := simFolder(t)
	ctx := context.Background()
	w := c.NewWaiter()
	defer w.Close()
	var vms []*VM
	for i := 1; i <= 6; i++ {
		boot := []string{"iso", "pxe"}[i%2]
		vm, err := w.CreateVM(ctx, p, folder, VMSpec{Name: fmt.Sprintf("w-%d", i), Group: "g", Index: i, CPUs: 1, MemoryMiB: 512,
			DiskGiB: 1, GuestID: "otherLinux64Guest", Firmware: "bios", Boot: boot, ISO: "[LocalDS_0] x.iso",
			BIOSUUID: uuid.NewString(), InstanceUUID: uuid.NewString()})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"iso": "cdrom", "pxe": "ethernet"}[boot]; vm.BootFirst != want || vm.MAC == "" {
			t.Errorf("%s: boots %q first (want %s), mac %q", vm.Name, vm.BootFirst, want, vm.MAC)
		}
		vms = append(vms, vm)
	}
	before := w.Rounds()
	tasks := make([]*object.Task, len(vms))
	for i, vm := range vms {
		spec := types.VirtualMachineConfigSpec{MemoryMB: 1024}
		if i == 2 {
			spec = types.VirtualMachineConfigSpec{GuestId: "no-such-guest"}
		}
		var err error
		if tasks[i], err = c.Object(vm).Reconfigure(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	tasks = append(tasks, object.NewTask(c.VC, types.ManagedObjectReference{Type: "Task", Value: "task-nope"}))
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var info *types.TaskInfo
			info, errs[i] = w.Wait(ctx, task)
			if errs[i] == nil && (info == nil || info.State != types.TaskInfoStateSuccess) {
				errs[i] = fmt.Errorf("no error but info %+v", info)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 2:
			if !fault.Is(err, &types.InvalidArgument{}) {
				t.Errorf("failed task: err = %v, want the fault", err)
			}
		case i == len(vms):
			if err == nil {
				t.Errorf("unknown task: no error")
			}
		case err != nil:
			t.Errorf("task %d: %v", i, err)
		}
	}
	t.Logf("%d tasks in %d rounds", len(tasks), w.Rounds()-before)
	for _, vm := range vms {
		full, err := c.Get(ctx, vm.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 512, false: 1024}[vm.Name == "w-3"]; full.MemoryMiB != want {
			t.Errorf("%s: %d MiB, want %d", vm.Name, full.MemoryMiB, want)
		}
	}
	// Reads of VMs ride in the rounds too: a VM as Client.Get reads it, and
	// an error for one vCenter does not know.
	for _, ref := range []types.ManagedObjectReference{vms[0].Ref, {Type: "VirtualMachine", Value: "vm-nope"}} {
		got, err := w.Get(ctx, ref)
		switch {
		case ref.Value == "vm-nope":
			if err == nil {
				t.Errorf("Get of an unknown VM: %+v, no error", got)
			}
		case err != nil:
			t.Fatal(err)
		case got.Name != vms[0].Name || got.MAC != vms[0].MAC || got.BIOSUUID != vms[0].BIOSUUID || got.BootFirst != vms[0].BootFirst:
			t.Errorf("Get = %+v, want %+v", got, vms[0])
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.Wait(cctx, tasks[0]); err == nil {
		t.Errorf("Wait with a cancelled context: no error")
	}
}

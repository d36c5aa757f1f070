package vsphere

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// runtimeOf is vm's power state and boot time (the simulator keeps the
// boot time in the summary only).
func runtimeOf(t *testing.T, c *Client, vm *VM) types.VirtualMachineRuntimeInfo {
	t.Helper()
	var m mo.VirtualMachine
	if err := c.Object(vm).Properties(context.Background(), vm.Ref, []string{"summary.runtime"}, &m); err != nil {
		t.Fatal(err)
	}
	return m.Summary.Runtime
}

// TestResetAndSetImage resets a running VM (it boots again: a new boot
// time), powers on an off one, records a new image marker, puts a new ISO
// into an iso VM's CD-ROM (a pxe VM has none), and turns a refused reset
// into one line naming the VM.
func TestResetAndSetImage(t *testing.T) {
	// Not parallel: simulators share package state.
	sim, c, p, folder := simFolder(t)
	ctx := context.Background()
	vm, err := c.CreateVM(ctx, p, folder, VMSpec{Name: "tf-sw-1", Group: "workers", Role: "worker", Image: "worker-old", Index: 1,
		CPUs: 1, MemoryMiB: 512, DiskGiB: 1, GuestID: "otherLinux64Guest", Firmware: "bios", Boot: "pxe",
		BIOSUUID: uuid.NewString(), InstanceUUID: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx, vm); err != nil {
		t.Fatal(err)
	}
	before := runtimeOf(t, c, vm)
	if before.PowerState != types.VirtualMachinePowerStatePoweredOn || before.BootTime == nil {
		t.Fatalf("after power on: %s, boot time %v", before.PowerState, before.BootTime)
	}
	time.Sleep(20 * time.Millisecond)
	if err := c.Reset(ctx, vm); err != nil {
		t.Fatalf("reset a running VM: %v", err)
	}
	after := runtimeOf(t, c, vm)
	if after.PowerState != types.VirtualMachinePowerStatePoweredOn || after.BootTime == nil || !after.BootTime.After(*before.BootTime) {
		t.Errorf("after reset: %s, boot time %v (before %v): want on and booted again", after.PowerState, after.BootTime, before.BootTime)
	}

	if err := c.PowerOff(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset(ctx, vm); err != nil {
		t.Fatalf("reset a VM that is off: %v", err)
	}
	if st := runtimeOf(t, c, vm).PowerState; st != types.VirtualMachinePowerStatePoweredOn {
		t.Errorf("reset of an off VM left it %s, want poweredOn", st)
	}

	if err := c.SetImage(ctx, vm, "worker-2027q1"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, vm.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Image != "worker-2027q1" || extra(readConfig(t, c, vm), KeyImage) != "worker-2027q1" {
		t.Errorf("image marker %q, want worker-2027q1", got.Image)
	}

	if err := c.SetISO(ctx, vm, "[LocalDS_0] swarmboot/new.iso"); err == nil || !strings.Contains(err.Error(), "no CD-ROM") {
		t.Errorf("SetISO on a pxe VM: %v, want no CD-ROM", err)
	}
	iso, err := c.CreateVM(ctx, p, folder, VMSpec{Name: "tf-sw-m1", Group: "managers", Role: "manager", Image: "[LocalDS_0] swarmboot/old.iso", Index: 1,
		CPUs: 1, MemoryMiB: 512, DiskGiB: 1, GuestID: "otherLinux64Guest", Firmware: "bios", Boot: "iso", ISO: "[LocalDS_0] swarmboot/old.iso",
		BIOSUUID: uuid.NewString(), InstanceUUID: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetISO(ctx, iso, "[LocalDS_0] swarmboot/new.iso"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, iso.Ref); err != nil || got.ISO != "[LocalDS_0] swarmboot/new.iso" {
		t.Errorf("CD-ROM after SetISO: %q, %v", got.ISO, err)
	}

	sim.AddFault(&simulator.FaultInjectionRule{MethodName: "ResetVM_Task", ObjectType: "*", ObjectName: "*", Probability: 1,
		FaultType: simulator.FaultTypeCustom, Fault: &types.NoPermission{}, Enabled: true})
	defer sim.ClearFaults()
	err = c.Reset(ctx, vm)
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "tf-sw-1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("refused reset: %v; want ErrPermission, one line naming tf-sw-1", err)
	}
}

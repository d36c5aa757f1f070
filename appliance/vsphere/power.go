package vsphere

import (
	"context"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/types"
)

// Reset hard-resets vm (ResetVM_Task: the power button held, then pressed
// again), so it boots afresh — into a new image for a netbooted VM whose
// image the appliance changed. A VM that is off is powered on instead.
func (c *Client) Reset(ctx context.Context, vm *VM) error {
	task, err := c.Object(vm).Reset(ctx)
	if err == nil {
		_, err = c.wait(ctx, task)
	}
	if err != nil && fault.Is(err, &types.InvalidPowerState{}) {
		// Off (or suspended): ResetVM refuses; a power-on boots it.
		return c.PowerOn(ctx, vm)
	}
	if err != nil {
		return Explain(err, "reset", "VM "+vm.Name)
	}
	vm.PowerState = string(types.VirtualMachinePowerStatePoweredOn)
	return nil
}

// SetImage records image as vm's swarmboot.image marker, so vCenter names
// the image the VM boots after a rotation (the appliance's store is
// rebuilt from these markers when it is lost).
func (c *Client) SetImage(ctx context.Context, vm *VM, image string) error {
	task, err := c.Object(vm).Reconfigure(ctx, types.VirtualMachineConfigSpec{
		ExtraConfig: []types.BaseOptionValue{&types.OptionValue{Key: KeyImage, Value: image}}})
	if err == nil {
		_, err = c.wait(ctx, task)
	}
	if err != nil {
		return Explain(err, "set the image marker of", "VM "+vm.Name)
	}
	vm.Image = image
	return nil
}

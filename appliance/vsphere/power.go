package vsphere

import (
	"context"
	"fmt"

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

// SetISO points vm's CD-ROM at the datastore ISO dsPath ("[ds] dir/x.iso"),
// so its next boot starts the new image (a roll of an iso-boot VM). The
// VM must have the CD-ROM its iso-boot creation gave it.
func (c *Client) SetISO(ctx context.Context, vm *VM, dsPath string) error {
	o := c.Object(vm)
	devices, err := o.Device(ctx)
	if err != nil {
		return Explain(err, "read the devices of", "VM "+vm.Name)
	}
	cds := devices.SelectByType((*types.VirtualCdrom)(nil))
	if len(cds) == 0 {
		return fmt.Errorf("VM %s has no CD-ROM to put %s in: it was not created for iso boot (its group's boot: is pxe?)", vm.Name, dsPath)
	}
	cd := devices.InsertIso(cds[0].(*types.VirtualCdrom), dsPath)
	if err := o.EditDevice(ctx, cd); err != nil {
		return Explain(err, "change the CD-ROM of", "VM "+vm.Name)
	}
	vm.ISO = dsPath
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

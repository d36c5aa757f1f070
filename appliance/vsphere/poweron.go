package vsphere

import (
	"context"
	"fmt"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// PowerOnMany powers vms on with one vCenter call (PowerOnMultiVM) and
// waits for each VM's power-on; VMs already on are fine. The error names
// every VM that did not come up.
func (c *Client) PowerOnMany(ctx context.Context, dc *object.Datacenter, vms []*VM) error {
	if len(vms) == 0 {
		return nil
	}
	byRef := map[types.ManagedObjectReference]*VM{}
	refs := make([]types.ManagedObjectReference, 0, len(vms))
	for _, vm := range vms {
		refs = append(refs, vm.Ref)
		byRef[vm.Ref] = vm
	}
	task, err := dc.PowerOnVM(ctx, refs)
	if err != nil {
		return Explain(err, "power on", fmt.Sprintf("%d VMs", len(vms)))
	}
	if task == nil { // ESX: powered on one by one already
		return nil
	}
	info, err := c.wait(ctx, task)
	if err != nil {
		return Explain(err, "power on", fmt.Sprintf("%d VMs", len(vms)))
	}
	res, _ := info.Result.(types.ClusterPowerOnVmResult)
	var failed []string
	for _, na := range res.NotAttempted {
		name := na.Vm.Value
		if vm := byRef[na.Vm]; vm != nil {
			name = vm.Name
		}
		failed = append(failed, name+" ("+na.Fault.LocalizedMessage+")")
	}
	// The power-on tasks are waited for together: one read per round for
	// all of them, not a read (or five) per VM.
	var tasks []*object.Task
	var on []*VM
	for _, a := range res.Attempted {
		if vm := byRef[a.Vm]; a.Task != nil && vm != nil {
			tasks = append(tasks, object.NewTask(c.VC, *a.Task))
			on = append(on, vm)
		}
	}
	for i, r := range c.waitAll(ctx, tasks) {
		if r.err != nil && !fault.Is(r.err, &types.InvalidPowerState{}) {
			failed = append(failed, on[i].Name+" ("+oneLine(r.err)+")")
			continue
		}
		on[i].PowerState = string(types.VirtualMachinePowerStatePoweredOn)
	}
	if len(failed) > 0 {
		return &Error{Kind: ErrTask, Action: "power on", Object: "VMs " + strings.Join(failed, ", "), Reason: "did not power on", Advice: "see the vCenter task list, then run apply again"}
	}
	return nil
}

package vsphere

import (
	"context"
	"sort"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
)

// List returns every VM below folder (recursively), sorted by name, with
// Managed set on those carrying swarmboot's marker. It reads no device
// lists (see VM); Get a VM for its MAC and CD-ROM. A nil folder (not
// created yet) has no VMs.
func (c *Client) List(ctx context.Context, folder *object.Folder) ([]VM, error) {
	if folder == nil {
		return nil, nil
	}
	m := view.NewManager(c.VC)
	v, err := m.CreateContainerView(ctx, folder.Reference(), []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, Explain(err, "list VMs in", "folder "+folder.InventoryPath)
	}
	defer v.Destroy(context.WithoutCancel(ctx))
	var mos []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, listProps, &mos); err != nil {
		return nil, Explain(err, "list VMs in", "folder "+folder.InventoryPath)
	}
	out := make([]VM, 0, len(mos))
	for i := range mos {
		out = append(out, fromMO(&mos[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Child returns the VM named name directly in folder, or nil.
func (c *Client) Child(ctx context.Context, folder *object.Folder, name string) (*VM, error) {
	ref, err := object.NewSearchIndex(c.VC).FindChild(ctx, folder, name)
	if err != nil {
		return nil, Explain(err, "look up", "VM "+name+" in "+folder.InventoryPath)
	}
	if ref == nil || ref.Reference().Type != "VirtualMachine" {
		return nil, nil
	}
	return c.Get(ctx, ref.Reference())
}

package fleet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/object"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// newToken returns a fresh one-time enrollment token (256 random bits).
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// created is a VM Apply made (or adopted), for its store record.
type created struct {
	vm     *vsphere.VM
	detail string
}

// storeTokens makes the spec of every VM p creates, with a fresh token and
// the BIOS UUID we choose, and stores the tokens' hashes, bound to those
// UUIDs, in one transaction, before any of the VMs exists: a VM a killed
// run created is always enrollable. Tokens that never reached a VM are
// removed by sync once the VM exists with another UUID. VMs already found
// (in now) are adopted instead and get no spec.
func (f *Fleet) storeTokens(p *Plan, now map[string]*vsphere.VM) (map[string]vsphere.VMSpec, error) {
	specs := map[string]vsphere.VMSpec{}
	for _, c := range p.Changes {
		if c.Action != Create || now[c.Name] != nil {
			continue
		}
		g := c.Group
		spec := vsphere.VMSpec{Name: c.Name, Group: g.Name, Role: g.Role, Index: c.Index, CPUs: g.CPUs, MemoryMiB: g.MemoryMiB,
			DiskGiB: g.DiskGiB, GuestID: g.GuestID, Firmware: g.Firmware, Boot: g.Boot, ISO: c.Image, Token: newToken(),
			BIOSUUID: uuid.NewString(), InstanceUUID: uuid.NewString(), Image: g.Image}
		if g.Boot == "iso" {
			spec.Image = c.Image
		}
		specs[c.Name] = spec
	}
	if len(specs) == 0 {
		return specs, nil
	}
	err := f.Store.Update(func(tx *store.Tx) error {
		for _, s := range specs {
			t := store.Token{Hash: store.HashToken(s.Token), VM: s.Name, BIOSUUID: s.BIOSUUID, Expires: f.now().Add(f.ttl())}
			if err := tx.PutToken(t); err != nil {
				return fmt.Errorf("vm %s: %w", s.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store enrollment tokens: %w", err)
	}
	return specs, nil
}

// createOne makes one VM from spec (its token already stored), waiting
// through w, or adopts vm: what Apply found under this name just before
// creating, a VM a killed run created (vCenter would also refuse a second
// VM of that name in the folder; the simulator would not).
func (f *Fleet) createOne(ctx context.Context, p *Plan, folder *object.Folder, w *vsphere.Waiter, c Change, spec vsphere.VMSpec, vm *vsphere.VM) (created, error) {
	g := c.Group
	var err error
	switch {
	case vm != nil && !vm.Managed:
		return created{}, fmt.Errorf("vm %s: appeared in %s meanwhile but was not created by swarmboot: rename or remove it", c.Name, folder.InventoryPath)
	case vm != nil:
		vm, err = f.adoptVM(ctx, vm)
	default:
		if err := f.at(c.Name, "token-stored"); err != nil {
			return created{}, err
		}
		vm, err = w.CreateVM(ctx, p.Placement, folder, spec)
		if errors.Is(err, vsphere.ErrExists) {
			vm, err = f.adopt(ctx, folder, c.Name, err)
		}
	}
	if err != nil {
		return created{}, err
	}
	f.log().Info("created", "vm", c.Name, "group", g.Name, "mac", vm.MAC, "bios_uuid", vm.BIOSUUID)
	if err := f.at(c.Name, "created"); err != nil {
		return created{}, err
	}
	f.progress("%s created (mac %s)", c.Name, vm.MAC)
	image := spec.Image
	if spec.Name == "" {
		image = vm.Image
	}
	return created{vm: vm, detail: fmt.Sprintf("group %s, %s boot, image %s", g.Name, g.Boot, orNone(image))}, nil
}

// adopt returns the VM named name in folder when swarmboot owns it.
func (f *Fleet) adopt(ctx context.Context, folder *object.Folder, name string, cause error) (*vsphere.VM, error) {
	vms, err := f.VS.List(ctx, folder)
	if err != nil {
		return nil, err
	}
	for i := range vms {
		if vms[i].Name == name && vms[i].Managed {
			return f.adoptVM(ctx, &vms[i])
		}
	}
	if cause == nil {
		cause = fmt.Errorf("vm %s: vanished while adopting it; run apply again", name)
	}
	return nil, cause
}

// adoptVM takes over a VM an interrupted run created, fixing its boot order.
func (f *Fleet) adoptVM(ctx context.Context, listed *vsphere.VM) (*vsphere.VM, error) {
	f.log().Info("adopting a VM an earlier, interrupted apply created", "vm", listed.Name)
	vm, err := f.VS.Get(ctx, listed.Ref) // with its devices and MAC
	if err != nil {
		return nil, err
	}
	if g := f.Site.Group(vm.Group); g != nil && vm.BootFirst == "" {
		if err := f.VS.SetBootOrder(ctx, vm, g.Boot); err != nil {
			return nil, err
		}
	}
	return vm, nil
}

// record writes (or refreshes) the store records of vms, with a
// vm-created event each, in one transaction.
func (f *Fleet) record(vms []created) error {
	if len(vms) == 0 {
		return nil
	}
	err := f.Store.Update(func(tx *store.Tx) error {
		for _, c := range vms {
			vm := c.vm
			old, err := tx.VM(vm.Name)
			at := f.now()
			if err == nil && old.BIOSUUID == vm.BIOSUUID {
				at = old.Created
			}
			rec := store.VM{Name: vm.Name, Group: vm.Group, Role: vm.Role, Image: vm.Image, MAC: vm.MAC,
				BIOSUUID: vm.BIOSUUID, InstanceUUID: vm.InstanceUUID, MoRef: vm.Ref.Value, Created: at}
			if err := tx.PutVM(rec); err != nil {
				return fmt.Errorf("vm %s: %w", vm.Name, err)
			}
			if err := tx.AppendEvent(store.Event{Time: f.now(), MAC: vm.MAC, VM: vm.Name, Kind: "vm-created", Detail: c.detail}); err != nil {
				return fmt.Errorf("vm %s: %w", vm.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store VM records: %w", err)
	}
	return nil
}

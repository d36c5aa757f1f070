package fleet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/object"
	"golang.org/x/sync/errgroup"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// Result is what Apply did.
type Result struct {
	Created, Updated, PoweredOn, Deleted []string
	Pushed                               []string          // datastore paths uploaded
	Rotate                               []string          // VMs that need a rotate
	IPs                                  map[string]string // name → guest IP (with Wait)
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	Wait bool // wait for every VM's guest IP (VMware Tools)
}

// Apply carries out p. It is safe to run again after it was killed at any
// point: the next Plan sees what exists through the swarmboot.managed
// markers, and Apply adopts a VM a killed run created.
func (f *Fleet) Apply(ctx context.Context, p *Plan, opt ApplyOptions) (*Result, error) {
	if len(p.Conflicts) > 0 {
		return nil, fmt.Errorf("%s: VM %s exists in %s but was not created by swarmboot: rename or remove it, or change the group's pattern", name(p.Site.Path), strings.Join(p.Conflicts, ", "), p.Placement.FolderPath)
	}
	res := &Result{}
	folder := p.Folder
	if folder == nil && len(p.Site.Groups) > 0 {
		var err error
		if folder, err = f.VS.EnsureFolder(ctx, p.Placement); err != nil {
			return res, err
		}
		f.progress("folder %s ready", p.Placement.FolderPath)
	}
	for _, im := range p.Pushes {
		r, err := f.VS.Push(ctx, p.Placement.Datacenter, p.Placement.Datastore, im.Local, nil)
		if err != nil {
			return res, err
		}
		if r.Uploaded {
			res.Pushed = append(res.Pushed, r.Path)
		}
		f.progress("image %s on %s", im.Local, r.Path)
	}
	var mu sync.Mutex
	add := func(list *[]string, name string) { mu.Lock(); *list = append(*list, name); mu.Unlock() }

	// Deletes first (they free capacity), then everything else.
	dg, dctx := errgroup.WithContext(ctx)
	dg.SetLimit(f.destroyLimit())
	for _, c := range p.Changes {
		if c.Action == Delete {
			dg.Go(func() error {
				if err := f.destroyOne(dctx, c.VM); err != nil {
					return err
				}
				add(&res.Deleted, c.Name)
				return nil
			})
		}
	}
	if err := dg.Wait(); err != nil {
		sort.Strings(res.Deleted)
		return res, err
	}
	// A killed run's creates may have landed after our plan: look once
	// more, right before creating, and adopt what we own.
	now := map[string]*vsphere.VM{}
	if p.Count(Create) > 0 {
		vms, err := f.VS.List(ctx, folder)
		if err != nil {
			return res, err
		}
		for i := range vms {
			now[vms[i].Name] = &vms[i]
		}
	}
	var powerOn []*vsphere.VM // created VMs and VMs found off: one power-on call
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.parallel())
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			g.Go(func() error {
				vm, err := f.createOne(gctx, p, folder, c, now[c.Name])
				if err != nil {
					return err
				}
				add(&res.Created, c.Name)
				mu.Lock()
				powerOn = append(powerOn, vm)
				mu.Unlock()
				return nil
			})
		case Update:
			g.Go(func() error {
				if err := f.updateOne(gctx, c); err != nil {
					return err
				}
				add(&res.Updated, c.Name)
				return nil
			})
		case PowerOn:
			mu.Lock()
			powerOn = append(powerOn, c.VM)
			mu.Unlock()
			res.PoweredOn = append(res.PoweredOn, c.Name)
		case Rotate:
			res.Rotate = append(res.Rotate, c.Name)
		}
	}
	err := g.Wait()
	if err == nil && len(powerOn) > 0 {
		if err = f.VS.PowerOnMany(ctx, p.Placement.Datacenter, powerOn); err == nil {
			f.progress("%d VMs powered on", len(powerOn))
		}
	}
	for _, l := range [][]string{res.Created, res.Updated, res.PoweredOn, res.Deleted} {
		sort.Strings(l)
	}
	if err != nil {
		return res, err
	}
	if err := f.sync(ctx, p.Placement); err != nil {
		return res, err
	}
	if opt.Wait {
		if res.IPs, err = f.WaitIPs(ctx, p.Placement); err != nil {
			return res, err
		}
	}
	return res, nil
}

// newToken returns a fresh one-time enrollment token (256 random bits).
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// createOne makes one VM. The token's hash is stored, bound to the BIOS
// UUID we choose, before the VM exists, so a VM a killed run created is
// always enrollable; tokens that never reached a VM are removed by sync.
func (f *Fleet) createOne(ctx context.Context, p *Plan, folder *object.Folder, c Change, vm *vsphere.VM) (*vsphere.VM, error) {
	g := c.Group
	log := f.log().With("vm", c.Name)
	token := newToken()
	spec := vsphere.VMSpec{Name: c.Name, Group: g.Name, Role: g.Role, Index: c.Index, CPUs: g.CPUs, MemoryMiB: g.MemoryMiB,
		DiskGiB: g.DiskGiB, GuestID: g.GuestID, Firmware: g.Firmware, Boot: g.Boot, ISO: c.Image, Token: token,
		BIOSUUID: uuid.NewString(), InstanceUUID: uuid.NewString(), Image: g.Image}
	if g.Boot == "iso" {
		spec.Image = c.Image
	}
	// vm is what Apply found under this name just before creating: a VM a
	// killed run created is adopted (vCenter would also refuse a second VM
	// of that name in the folder; the simulator would not).
	var err error
	switch {
	case vm != nil && !vm.Managed:
		return nil, fmt.Errorf("vm %s: appeared in %s meanwhile but was not created by swarmboot: rename or remove it", c.Name, folder.InventoryPath)
	case vm != nil:
		vm, err = f.adoptVM(ctx, vm)
	default:
		if err := f.storeToken(c.Name, token, spec.BIOSUUID); err != nil {
			return nil, err
		}
		if err := f.at(c.Name, "token-stored"); err != nil {
			return nil, err
		}
		vm, err = f.VS.CreateVM(ctx, p.Placement, folder, spec)
		if errors.Is(err, vsphere.ErrExists) {
			vm, err = f.adopt(ctx, folder, c.Name, err)
		}
	}
	if err != nil {
		return nil, err
	}
	log.Info("created", "group", g.Name, "mac", vm.MAC, "bios_uuid", vm.BIOSUUID)
	if err := f.at(c.Name, "created"); err != nil {
		return nil, err
	}
	if err := f.record(vm, "vm-created", fmt.Sprintf("group %s, %s boot, image %s", g.Name, g.Boot, orNone(spec.Image))); err != nil {
		return nil, err
	}
	if err := f.at(c.Name, "recorded"); err != nil {
		return nil, err
	}
	f.progress("%s created (mac %s)", c.Name, vm.MAC)
	return vm, nil
}

// storeToken records the hash of token for the VM name will get.
func (f *Fleet) storeToken(name, token, biosUUID string) error {
	err := f.Store.Batch(func(tx *store.Tx) error {
		return tx.PutToken(store.Token{Hash: store.HashToken(token), VM: name, BIOSUUID: biosUUID, Expires: f.now().Add(f.ttl())})
	})
	if err != nil {
		return fmt.Errorf("vm %s: store token: %w", name, err)
	}
	return nil
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

// record writes (or refreshes) the store record of vm.
func (f *Fleet) record(vm *vsphere.VM, kind, detail string) error {
	return f.Store.Batch(func(tx *store.Tx) error {
		old, err := tx.VM(vm.Name)
		created := f.now()
		if err == nil && old.BIOSUUID == vm.BIOSUUID {
			created = old.Created
		}
		rec := store.VM{Name: vm.Name, Group: vm.Group, Role: vm.Role, Image: vm.Image, MAC: vm.MAC,
			BIOSUUID: vm.BIOSUUID, InstanceUUID: vm.InstanceUUID, MoRef: vm.Ref.Value, Created: created}
		if err := tx.PutVM(rec); err != nil {
			return err
		}
		if kind == "" {
			return nil
		}
		return tx.AppendEvent(store.Event{Time: f.now(), MAC: vm.MAC, VM: vm.Name, Kind: kind, Detail: detail})
	})
}

// updateOne reconfigures a powered-off VM, fixes its boot order and powers it on.
func (f *Fleet) updateOne(ctx context.Context, c Change) error {
	g, vm := c.Group, c.VM
	if vm.CPUs != g.CPUs || vm.MemoryMiB != g.MemoryMiB {
		if err := f.VS.Reconfigure(ctx, vm, g.CPUs, g.MemoryMiB); err != nil {
			return err
		}
	}
	want := "ethernet"
	if g.Boot == "iso" {
		want = "cdrom"
	}
	if vm.BootFirst != want {
		if err := f.VS.SetBootOrder(ctx, vm, g.Boot); err != nil {
			return err
		}
	}
	if err := f.VS.PowerOn(ctx, vm); err != nil {
		return err
	}
	f.progress("%s updated: %s", c.Name, strings.Join(c.Reasons, ", "))
	return nil
}

// destroyOne deletes a VM we own and its records.
func (f *Fleet) destroyOne(ctx context.Context, vm *vsphere.VM) error {
	if err := f.VS.Destroy(ctx, vm); err != nil {
		return err
	}
	err := f.Store.Update(func(tx *store.Tx) error {
		mac := vm.MAC
		if r, err := tx.VM(vm.Name); err == nil && mac == "" {
			mac = r.MAC
		}
		if err := tx.DeleteVM(vm.Name); err != nil {
			return err
		}
		if err := tx.DeleteTokensForVM(vm.Name); err != nil {
			return err
		}
		return tx.AppendEvent(store.Event{Time: f.now(), MAC: mac, VM: vm.Name, Kind: "vm-destroyed"})
	})
	if err != nil {
		return fmt.Errorf("vm %s: store: %w", vm.Name, err)
	}
	f.log().Info("destroyed", "vm", vm.Name)
	f.progress("%s destroyed", vm.Name)
	return nil
}

package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

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
	// Every create's token hash is stored in one transaction (one fsync),
	// before any of those VMs exists.
	specs, err := f.storeTokens(p, now)
	if err != nil {
		return res, err
	}
	// The creates share their task waits: one read per round for all.
	w := f.VS.NewWaiter()
	defer w.Close()
	var powerOn []*vsphere.VM // created VMs and VMs found off: one power-on call
	var made []created
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.parallel())
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			g.Go(func() error {
				vm, err := f.createOne(gctx, p, folder, w, c, specs[c.Name], now[c.Name])
				if err != nil {
					return err
				}
				mu.Lock()
				made = append(made, vm)
				powerOn = append(powerOn, vm.vm)
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
	err = g.Wait()
	// The records of the VMs made (also when another create failed) go in
	// one transaction; a VM created but not recorded (a kill right here)
	// is recorded by the next run's sync.
	if rerr := f.record(made); err == nil {
		err = rerr
	}
	sort.Slice(made, func(i, j int) bool { return made[i].vm.Name < made[j].vm.Name })
	for _, c := range made {
		res.Created = append(res.Created, c.vm.Name)
	}
	for _, c := range made {
		if err == nil {
			err = f.at(c.vm.Name, "recorded")
		}
	}
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

package fleet

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// sync makes the store match the VMs we own in vCenter: records for every
// one (adopting VMs an interrupted run created), none for VMs that are
// gone, and no token that cannot reach a VM.
func (f *Fleet) sync(ctx context.Context, pl *vsphere.Placement) error {
	vms, err := f.folderVMs(ctx, pl)
	if err != nil {
		return err
	}
	owned := map[string]*vsphere.VM{}
	for i := range vms {
		if vms[i].Managed {
			owned[vms[i].Name] = &vms[i]
		}
	}
	// VMs without a matching record (an interrupted run's) are read in full
	// for their MAC.
	var stale []*vsphere.VM
	err = f.Store.View(func(tx *store.Tx) error {
		for _, vm := range owned {
			if r, err := tx.VM(vm.Name); err != nil || r.BIOSUUID != vm.BIOSUUID || r.MoRef != vm.Ref.Value || r.MAC == "" {
				stale = append(stale, vm)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, vm := range stale {
		full, err := f.VS.Get(ctx, vm.Ref)
		if err != nil {
			return err
		}
		stale[i] = full
	}
	return f.Store.Update(func(tx *store.Tx) error {
		recs, err := tx.VMs()
		if err != nil {
			return err
		}
		for _, r := range recs {
			if owned[r.Name] == nil && f.inSite(r.Group) {
				if err := tx.DeleteVM(r.Name); err != nil {
					return err
				}
				if err := tx.DeleteTokensForVM(r.Name); err != nil {
					return err
				}
			}
		}
		for _, vm := range stale {
			created := f.now()
			if r, err := tx.VM(vm.Name); err == nil && r.BIOSUUID == vm.BIOSUUID {
				created = r.Created
			}
			if err := tx.PutVM(store.VM{Name: vm.Name, Group: vm.Group, Role: vm.Role, Image: vm.Image, MAC: vm.MAC,
				BIOSUUID: vm.BIOSUUID, InstanceUUID: vm.InstanceUUID, MoRef: vm.Ref.Value, Created: created}); err != nil {
				return err
			}
		}
		// One pass over the tokens, not one per VM (a 1,000-VM apply spent
		// seconds here).
		toks, err := tx.Tokens()
		if err != nil {
			return err
		}
		for _, t := range toks {
			// A token of one of our VMs with another BIOS UUID was made for
			// a create that never happened.
			if vm := owned[t.VM]; t.VM != "" && vm != nil && t.BIOSUUID != vm.BIOSUUID {
				if err := tx.DeleteToken(t.Hash); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// inSite reports whether group belongs to this site file (records of
// groups from another site file sharing the store are left alone).
func (f *Fleet) inSite(group string) bool {
	return f.Site.Group(group) != nil
}

// folderVMs lists every VM in the site's folder (ours and others').
func (f *Fleet) folderVMs(ctx context.Context, pl *vsphere.Placement) ([]vsphere.VM, error) {
	folder, err := f.VS.Folder(ctx, pl)
	if err != nil {
		return nil, err
	}
	return f.VS.List(ctx, folder)
}

// WaitIPs waits for the guest IP (VMware Tools) of every VM the site wants.
func (f *Fleet) WaitIPs(ctx context.Context, pl *vsphere.Placement) (map[string]string, error) {
	vms, err := f.folderVMs(ctx, pl)
	if err != nil {
		return nil, err
	}
	ips := map[string]string{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4 * f.parallel())
	for i := range vms {
		vm := &vms[i]
		if !vm.Managed || !f.wanted(vm.Name) {
			continue
		}
		g.Go(func() error {
			ip, err := f.VS.WaitIP(gctx, vm)
			if err != nil {
				return err
			}
			mu.Lock()
			ips[vm.Name] = ip
			mu.Unlock()
			f.progress("%s has address %s", vm.Name, ip)
			return nil
		})
	}
	return ips, g.Wait()
}

func (f *Fleet) wanted(name string) bool {
	for i := range f.Site.Groups {
		g := &f.Site.Groups[i]
		if n, ok := g.Index(name); ok && n <= g.Count {
			return true
		}
	}
	return false
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/swarmboot/swarmboot/appliance/fleet"
	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// vcenter is the appliance's vCenter side: a session (to a real vCenter or
// an in-process simulator) and the fleet that applies the site.
type vcenter struct {
	sim   *vsphere.Sim
	vs    *vsphere.Client
	fleet *fleet.Fleet
	log   *slog.Logger

	done    chan struct{}
	mu      sync.Mutex
	applied error
}

func openVCenter(ctx context.Context, s *site.Site, simulate bool, st *store.Store, log *slog.Logger) (*vcenter, error) {
	v := &vcenter{log: log.With("part", "vcenter"), done: make(chan struct{})}
	if simulate {
		sim, err := vsphere.StartSim()
		if err != nil {
			return nil, err
		}
		v.sim = sim
		cp := *s
		def := sim.Site()
		cp.VCenter = def.VCenter
		cp.Datacenter, cp.Datastore, cp.ResourcePool, cp.Network = def.Datacenter, def.Datastore, def.ResourcePool, def.Network
		s = &cp
		v.log.Info("simulated vCenter (govmomi simulator; nothing real is touched)", "url", sim.VCenter.URL)
	}
	vs, err := vsphere.Connect(ctx, s.VCenter, v.log)
	if err != nil {
		v.close()
		return nil, err
	}
	v.vs = vs
	par := 0
	if simulate {
		par = 1 // govmomi's simulator is not safe for concurrent VM creates
	}
	v.fleet = &fleet.Fleet{Site: s, VS: vs, Store: st, Log: v.log, Parallel: par,
		Progress: func(line string) { v.log.Info("apply: " + line) }}
	return v, nil
}

// apply converges vCenter onto the site once; its outcome is kept for
// ApplyErr.
func (v *vcenter) apply(ctx context.Context) {
	defer close(v.done)
	err := func() error {
		p, err := v.fleet.Plan(ctx)
		if err != nil {
			return err
		}
		res, err := v.fleet.Apply(ctx, p, fleet.ApplyOptions{})
		if err != nil {
			return err
		}
		v.log.Info("site applied", "created", len(res.Created), "updated", len(res.Updated),
			"powered_on", len(res.PoweredOn), "deleted", len(res.Deleted))
		return nil
	}()
	if err != nil {
		v.log.Error("apply the site", "err", err)
	}
	v.mu.Lock()
	v.applied = err
	v.mu.Unlock()
}

func (v *vcenter) err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.applied
}

// ClearGuestinfo implements enroll.GuestinfoClearer: the VM's
// guestinfo.swarmboot.token is emptied once its token is spent.
func (v *vcenter) ClearGuestinfo(ctx context.Context, name string) error {
	vm, err := v.vm(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil // not ours: nothing to clear
	}
	if err != nil {
		return err
	}
	return v.vs.ClearToken(ctx, vm)
}

// vm is the VM the store records as name, read from vCenter
// (store.ErrNotFound when the store has no vCenter reference for it).
func (v *vcenter) vm(ctx context.Context, name string) (*vsphere.VM, error) {
	var ref string
	err := v.fleet.Store.View(func(tx *store.Tx) error {
		vm, err := tx.VM(name)
		if err == nil {
			ref = vm.MoRef
		}
		return err
	})
	if err == nil && ref == "" {
		err = fmt.Errorf("vm %s has no vCenter reference: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	vm, err := v.vs.Get(ctx, types.ManagedObjectReference{Type: "VirtualMachine", Value: ref})
	if err != nil {
		return nil, fmt.Errorf("vm %s: %w", name, err)
	}
	return vm, nil
}

// reset hard-resets the VM (a roll onto a new image).
func (v *vcenter) reset(ctx context.Context, name string) error {
	vm, err := v.vm(ctx, name)
	if err != nil {
		return err
	}
	return v.vs.Reset(ctx, vm)
}

// insertISO pushes artifacts/image.iso to the site's datastore (once:
// the file name carries its content hash), points the VM's CD-ROM at it
// and records its datastore path as the VM's image marker, as apply does
// for an iso-boot VM; it returns that path.
func (v *vcenter) insertISO(ctx context.Context, artifacts, name, image string) (string, error) {
	local := filepath.Join(artifacts, image+".iso")
	p, err := v.vs.Resolve(ctx, v.fleet.Site)
	if err != nil {
		return "", err
	}
	pushed, err := v.vs.Push(ctx, p.Datacenter, p.Datastore, local, nil)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", local, err)
	}
	if pushed.Uploaded {
		v.log.Info("rotate: ISO pushed", "image", image, "path", pushed.Path)
	}
	vm, err := v.vm(ctx, name)
	if err != nil {
		return "", err
	}
	if err := v.vs.SetISO(ctx, vm, pushed.Path); err != nil {
		return "", err
	}
	if err := v.vs.SetImage(ctx, vm, pushed.Path); err != nil {
		return "", err
	}
	return pushed.Path, nil
}

// setImage records the VM's new image as its swarmboot.image marker.
func (v *vcenter) setImage(ctx context.Context, name, image string) error {
	vm, err := v.vm(ctx, name)
	if err != nil {
		return err
	}
	return v.vs.SetImage(ctx, vm, image)
}

func (v *vcenter) close() {
	if v.vs != nil {
		_ = v.vs.Close(context.Background())
	}
	if v.sim != nil {
		v.sim.Close()
	}
}

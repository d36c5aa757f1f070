package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// Selection says which VMs Destroy removes: those of Groups, plus Names;
// both empty means every VM swarmboot owns in the site's folder.
type Selection struct {
	Groups []string
	Names  []string
}

// Targets lists the VMs sel picks, refusing names swarmboot does not own
// or that do not exist.
func (f *Fleet) Targets(ctx context.Context, sel Selection) ([]vsphere.VM, error) {
	pl, err := f.VS.Resolve(ctx, f.Site)
	if err != nil {
		return nil, err
	}
	vms, err := f.folderVMs(ctx, pl)
	if err != nil {
		return nil, err
	}
	byName := map[string]*vsphere.VM{}
	for i := range vms {
		byName[vms[i].Name] = &vms[i]
	}
	pick := map[string]bool{}
	for _, n := range sel.Names {
		vm := byName[n]
		switch {
		case vm == nil:
			return nil, fmt.Errorf("destroy %s: no such VM in %s", n, pl.FolderPath)
		case !vm.Managed:
			return nil, fmt.Errorf("destroy %s: not created by swarmboot (no %s marker); refusing to touch it", n, vsphere.KeyManaged)
		}
		pick[n] = true
	}
	groups := map[string]bool{}
	for _, g := range sel.Groups {
		groups[g] = true
	}
	var out []vsphere.VM
	for _, vm := range vms {
		if !vm.Managed {
			continue
		}
		all := len(sel.Names) == 0 && len(sel.Groups) == 0
		if all || pick[vm.Name] || groups[vm.Group] {
			out = append(out, vm)
		}
	}
	for g := range groups {
		found := false
		for _, vm := range out {
			found = found || vm.Group == g
		}
		if !found && f.Site.Group(g) == nil {
			return nil, fmt.Errorf("destroy --group %s: no such group in %s and no VM of it in vCenter", g, name(f.Site.Path))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return out[i].Index > out[j].Index
	})
	return out, nil
}

// Destroy powers off and deletes vms (from Targets), with their records
// and tokens.
func (f *Fleet) Destroy(ctx context.Context, vms []vsphere.VM) ([]string, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.destroyLimit())
	done := make([]bool, len(vms))
	for i := range vms {
		g.Go(func() error {
			if err := f.destroyOne(gctx, &vms[i]); err != nil {
				return err
			}
			done[i] = true
			return nil
		})
	}
	err := g.Wait()
	var names []string
	for i, ok := range done {
		if ok {
			names = append(names, vms[i].Name)
		}
	}
	if err != nil {
		return names, fmt.Errorf("%w (destroyed %d of %d: %s; run destroy again)", err, len(names), len(vms), strings.Join(names, " "))
	}
	return names, nil
}

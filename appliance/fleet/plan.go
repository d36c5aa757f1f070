package fleet

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"

	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// Action is what apply does to one VM.
type Action string

// Actions, in the order apply runs them.
const (
	Delete  Action = "delete"
	Create  Action = "create"
	Update  Action = "update"   // reconfigure a powered-off VM (CPUs, memory, boot order), then power on
	PowerOn Action = "power-on" // a VM we own is off
	Rotate  Action = "rotate"   // differs in a way apply does not change in place; reported only
)

// Change is one VM's difference between the site file and vCenter.
type Change struct {
	Action  Action
	Name    string
	Group   *site.Group // wanted group (nil for a delete of a removed group)
	Index   int
	VM      *vsphere.VM // as observed (nil for a create)
	Reasons []string    // why, e.g. "cpus 2 → 4"
	Image   string      // datastore ISO for creates of iso-boot groups
	// Swarm says, for a delete, what becomes of the VM's swarm node
	// ("" when it never reported one).
	Swarm string
}

// Plan is the difference between the site file and vCenter.
type Plan struct {
	Site      *site.Site
	Placement *vsphere.Placement
	Folder    *object.Folder // nil when it does not exist yet
	Changes   []Change
	Unchanged []*vsphere.VM
	Conflicts []string // names we want that a VM we do not own already has
	Pushes    []image  // ISOs not on the datastore yet
	images    map[string]image
}

// Count returns how many changes of action a there are.
func (p *Plan) Count(a Action) int {
	n := 0
	for _, c := range p.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// HasChanges reports whether apply would change anything (or a rotate is
// needed).
func (p *Plan) HasChanges() bool {
	return len(p.Changes) > 0 || len(p.Pushes) > 0 || p.Folder == nil && len(p.Site.Groups) > 0
}

// Plan compares the site file with vCenter. It changes nothing.
func (f *Fleet) Plan(ctx context.Context) (*Plan, error) {
	pl, err := f.VS.Resolve(ctx, f.Site)
	if err != nil {
		return nil, err
	}
	p := &Plan{Site: f.Site, Placement: pl}
	if p.images, err = f.images(pl.Datastore.Name()); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, g := range f.Site.Groups {
		im, ok := p.images[g.Name]
		if !ok || seen[im.DSPath] {
			continue
		}
		seen[im.DSPath] = true
		if im.Local == "" { // "[ds] path" given: it must be there already
			if err := f.VS.CheckISO(ctx, pl.Datacenter, im.DSPath); err != nil {
				return nil, fmt.Errorf("%s:%d: group %s: %w", f.Site.Path, g.Line, g.Name, err)
			}
			continue
		}
		if ok, err := f.VS.Exists(ctx, pl.Datastore, im.File, im.Local); err != nil {
			return nil, err
		} else if !ok {
			p.Pushes = append(p.Pushes, im)
		}
	}
	if p.Folder, err = f.VS.Folder(ctx, pl); err != nil {
		return nil, err
	}
	vms, err := f.VS.List(ctx, p.Folder)
	if err != nil {
		return nil, err
	}
	p.diff(vms)
	if f.Store != nil {
		members, err := Members(f.Store, nil)
		if err != nil {
			return nil, err
		}
		p.noteSwarm(members)
	}
	return p, nil
}

// noteSwarm says, on each delete of a VM whose node reported a swarm
// node, that apply leaves that swarm node (destroy drains and removes).
func (p *Plan) noteSwarm(members map[string]Member) {
	for i, c := range p.Changes {
		if m, ok := members[c.Name]; ok && c.Action == Delete && m.NodeID != "" && !m.Revoked {
			p.Changes[i].Swarm = fmt.Sprintf("swarm node %s stays in the swarm (listed down) and node %s keeps its certificate: apply does not drain or remove it; run swarmboot destroy %s first to drain, remove and revoke it", m.NodeID, m.Node, c.Name)
		}
	}
}

func (p *Plan) diff(vms []vsphere.VM) {
	have := map[string]*vsphere.VM{}
	for i := range vms {
		have[vms[i].Name] = &vms[i]
	}
	want := map[string]bool{}
	for gi := range p.Site.Groups {
		g := &p.Site.Groups[gi]
		img := p.images[g.Name].DSPath
		for n := 1; n <= g.Count; n++ {
			name := g.VMName(n)
			want[name] = true
			vm := have[name]
			switch {
			case vm == nil:
				p.Changes = append(p.Changes, Change{Action: Create, Name: name, Group: g, Index: n, Image: img})
			case !vm.Managed:
				p.Conflicts = append(p.Conflicts, name)
			default:
				p.compare(g, n, vm, img)
			}
		}
	}
	// Deletes: VMs we own that the site no longer wants, highest-numbered first.
	var dels []Change
	for i := range vms {
		vm := &vms[i]
		if !vm.Managed || want[vm.Name] {
			continue
		}
		c := Change{Action: Delete, Name: vm.Name, VM: vm, Index: vm.Index}
		if g := p.Site.Group(vm.Group); g != nil {
			c.Group = g
			c.Reasons = []string{fmt.Sprintf("group %s shrinks to %d", g.Name, g.Count)}
		} else {
			c.Reasons = []string{fmt.Sprintf("group %q is not in %s", vm.Group, p.Site.Path)}
		}
		dels = append(dels, c)
	}
	sort.SliceStable(dels, func(i, j int) bool {
		if dels[i].VM.Group != dels[j].VM.Group {
			return dels[i].VM.Group < dels[j].VM.Group
		}
		return dels[i].Index > dels[j].Index
	})
	p.Changes = append(dels, p.Changes...)
}

// compare decides what to do with a VM we own that the site wants.
func (p *Plan) compare(g *site.Group, n int, vm *vsphere.VM, img string) {
	var inPlace, replace []string
	if vm.CPUs != g.CPUs {
		inPlace = append(inPlace, fmt.Sprintf("cpus %d → %d", vm.CPUs, g.CPUs))
	}
	if vm.MemoryMiB != g.MemoryMiB {
		inPlace = append(inPlace, fmt.Sprintf("memory %d → %d MiB", vm.MemoryMiB, g.MemoryMiB))
	}
	wantFirst := "ethernet"
	if g.Boot == "iso" {
		wantFirst = "cdrom"
	}
	if vm.BootFirst != wantFirst && vm.Boot == g.Boot {
		inPlace = append(inPlace, fmt.Sprintf("boot order %s first → %s first", orNone(vm.BootFirst), wantFirst))
	}
	if vm.Firmware != g.Firmware {
		replace = append(replace, fmt.Sprintf("firmware %s → %s", vm.Firmware, g.Firmware))
	}
	if vm.DiskGiB != g.DiskGiB {
		replace = append(replace, fmt.Sprintf("disk %d → %d GiB", vm.DiskGiB, g.DiskGiB))
	}
	switch {
	case vm.Boot != g.Boot:
		replace = append(replace, fmt.Sprintf("boot %s → %s", orNone(vm.Boot), g.Boot))
	case g.Boot == "iso" && vm.Image != img:
		replace = append(replace, fmt.Sprintf("image %s → %s", vm.Image, img))
	}
	if vm.Role != "" && vm.Role != g.Role {
		replace = append(replace, fmt.Sprintf("role %s → %s", vm.Role, g.Role))
	}
	off := vm.PowerState != "poweredOn"
	c := Change{Name: vm.Name, Group: g, Index: n, VM: vm}
	switch {
	case len(replace) > 0 || len(inPlace) > 0 && !off:
		c.Action = Rotate
		c.Reasons = append(replace, inPlace...)
		if len(replace) == 0 {
			c.Reasons = append(c.Reasons, "the VM is running: power it off and apply again, or rotate it")
		} else {
			c.Reasons = append(c.Reasons, "needs a new VM: rotate it (or destroy it and apply)")
		}
	case len(inPlace) > 0:
		c.Action = Update
		c.Reasons = inPlace
	case off:
		c.Action = PowerOn
		c.Reasons = []string{"the VM is " + vm.PowerState}
	default:
		p.Unchanged = append(p.Unchanged, vm)
		return
	}
	p.Changes = append(p.Changes, c)
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// Write prints the plan the way Terraform does: one block per VM with its
// action and reason, then a summary line.
func (p *Plan) Write(w io.Writer) {
	if len(p.Conflicts) > 0 {
		for _, n := range p.Conflicts {
			fmt.Fprintf(w, "  ! vm %q exists in %s but was not created by swarmboot: rename or remove it, or change the group's pattern\n", n, p.Placement.FolderPath)
		}
		fmt.Fprintln(w)
	}
	if !p.HasChanges() {
		fmt.Fprintf(w, "No changes. vCenter matches %s (%d VMs).\n", name(p.Site.Path), len(p.Unchanged))
		return
	}
	fmt.Fprintln(w, "swarmboot will perform the following actions:")
	fmt.Fprintln(w)
	if p.Folder == nil && len(p.Site.Groups) > 0 {
		fmt.Fprintf(w, "  + folder %q will be created\n\n", p.Placement.FolderPath)
	}
	for _, im := range p.Pushes {
		fmt.Fprintf(w, "  + image %s will be pushed to %s\n\n", im.Local, im.DSPath)
	}
	for _, c := range p.Changes {
		switch c.Action {
		case Create:
			g := c.Group
			boot := "pxe (network first)"
			if g.Boot == "iso" {
				boot = "iso " + c.Image
			}
			fmt.Fprintf(w, "  # %s will be created\n  + vm %q {\n", c.Name, c.Name)
			fmt.Fprintf(w, "      group    = %q\n      role     = %q\n      cpus     = %d\n      memory   = %d MiB\n      disk     = %d GiB (thin)\n      guest_id = %q\n      firmware = %q\n      boot     = %s\n    }\n\n",
				g.Name, g.Role, g.CPUs, g.MemoryMiB, g.DiskGiB, g.GuestID, g.Firmware, boot)
		case Update:
			fmt.Fprintf(w, "  # %s will be updated in place (it is powered off)\n  ~ vm %q {\n", c.Name, c.Name)
			for _, r := range c.Reasons {
				fmt.Fprintf(w, "      ~ %s\n", r)
			}
			fmt.Fprintf(w, "    }\n\n")
		case PowerOn:
			fmt.Fprintf(w, "  # %s will be powered on (%s)\n  ~ vm %q\n\n", c.Name, strings.Join(c.Reasons, ", "), c.Name)
		case Delete:
			fmt.Fprintf(w, "  # %s will be destroyed (%s)\n", c.Name, strings.Join(c.Reasons, ", "))
			if c.Swarm != "" {
				fmt.Fprintf(w, "  # %s\n", c.Swarm)
			}
			fmt.Fprintf(w, "  - vm %q\n\n", c.Name)
		case Rotate:
			fmt.Fprintf(w, "  # %s differs but apply will not touch it: %s\n  ! vm %q\n\n", c.Name, strings.Join(c.Reasons, "; "), c.Name)
		}
	}
	fmt.Fprintf(w, "Plan: %d to add, %d to change, %d to destroy", p.Count(Create), p.Count(Update)+p.Count(PowerOn), p.Count(Delete))
	if n := p.Count(Rotate); n > 0 {
		fmt.Fprintf(w, ", %d needing a rotate", n)
	}
	fmt.Fprintf(w, " (%d unchanged).\n", len(p.Unchanged))
}

func name(path string) string {
	if path == "" {
		return "the site file"
	}
	return path
}

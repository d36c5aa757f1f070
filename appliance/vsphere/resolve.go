package vsphere

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/swarmboot/swarmboot/appliance/site"
)

// Placement is where the site's VMs go, resolved in vCenter.
type Placement struct {
	Datacenter *object.Datacenter
	Datastore  *object.Datastore
	Pool       *object.ResourcePool
	Network    object.NetworkReference
	VMFolder   *object.Folder // the datacenter's root VM folder
	FolderPath string         // inventory path of the site's folder (may not exist yet)
	finder     *find.Finder

	backingMu sync.Mutex
	backing   types.BaseVirtualDeviceBackingInfo // the network's NIC backing, read once
}

// networkBacking is the NIC backing of p's network, read from vCenter once
// per Placement (it was a round trip per created VM).
func (p *Placement) networkBacking(ctx context.Context) (types.BaseVirtualDeviceBackingInfo, error) {
	p.backingMu.Lock()
	defer p.backingMu.Unlock()
	if p.backing != nil {
		return p.backing, nil
	}
	b, err := p.Network.EthernetCardBackingInfo(ctx)
	if err != nil {
		return nil, Explain(err, "read backing of", "network "+p.Network.GetInventoryPath())
	}
	p.backing = b
	return b, nil
}

// Resolve finds the site's datacenter, datastore, resource pool and network.
// A name that does not exist is an error listing the names that do. The
// site's folder is not created here (see EnsureFolder).
func (c *Client) Resolve(ctx context.Context, s *site.Site) (*Placement, error) {
	f := c.finder()
	var errs []string
	dc, err := f.Datacenter(ctx, s.Datacenter)
	if err != nil {
		return nil, c.missing(ctx, err, "datacenter", s.Datacenter, s.Path, func() ([]string, error) {
			l, err := f.DatacenterList(ctx, "*")
			return names(l, err, func(d *object.Datacenter) string { return d.Name() })
		})
	}
	f.SetDatacenter(dc)
	p := &Placement{Datacenter: dc, finder: f}
	if p.Datastore, err = f.Datastore(ctx, s.Datastore); err != nil {
		errs = append(errs, c.missing(ctx, err, "datastore", s.Datastore, s.Path, func() ([]string, error) {
			l, err := f.DatastoreList(ctx, "*")
			return names(l, err, func(d *object.Datastore) string { return d.Name() })
		}).Error())
	}
	if s.ResourcePool == "" {
		p.Pool, err = f.DefaultResourcePool(ctx)
	} else {
		p.Pool, err = f.ResourcePool(ctx, s.ResourcePool)
	}
	if err != nil {
		errs = append(errs, c.missing(ctx, err, "resource_pool", s.ResourcePool, s.Path, func() ([]string, error) {
			var out []string
			for _, pat := range []string{"*/Resources", "*/Resources/*"} {
				l, _ := f.ResourcePoolList(ctx, pat)
				for _, rp := range l {
					out = append(out, rp.InventoryPath)
				}
			}
			return out, nil
		}).Error())
	}
	if p.Network, err = f.Network(ctx, s.Network); err != nil {
		errs = append(errs, c.missing(ctx, err, "network", s.Network, s.Path, func() ([]string, error) {
			l, err := f.NetworkList(ctx, "*")
			return names(l, err, func(n object.NetworkReference) string { return path.Base(n.GetInventoryPath()) })
		}).Error())
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return nil, Explain(err, "read folders of", "datacenter "+s.Datacenter)
	}
	p.VMFolder = folders.VmFolder
	p.FolderPath = folders.VmFolder.InventoryPath
	if s.Folder != "" {
		p.FolderPath = path.Join(p.FolderPath, s.Folder)
	}
	return p, nil
}

// missing explains a lookup failure, listing what exists.
func (c *Client) missing(ctx context.Context, err error, key, name, file string, list func() ([]string, error)) error {
	var nf *find.NotFoundError
	var dflt *find.DefaultNotFoundError
	var multi *find.MultipleFoundError
	var dmulti *find.DefaultMultipleFoundError
	if !errors.As(err, &nf) && !errors.As(err, &dflt) && !errors.As(err, &multi) && !errors.As(err, &dmulti) {
		return Explain(err, "look up", key+" "+name)
	}
	have, _ := list()
	sort.Strings(have)
	what := "no " + key + " named " + fmt.Sprintf("%q", name)
	if errors.As(err, &multi) {
		what = fmt.Sprintf("%s %q matches more than one object; give its full inventory path", key, name)
	}
	if name == "" {
		what = "no " + key + " given and there is no single default"
	}
	if len(have) == 0 {
		return &Error{Kind: ErrNotFound, Action: "site file " + file, Object: key, Reason: what + " in vCenter", Advice: "none exist; create one or check the vCenter user's permissions", Err: err}
	}
	return &Error{Kind: ErrNotFound, Action: "site file " + file, Object: key, Reason: what + " in vCenter", Advice: "these exist: " + strings.Join(have, ", "), Err: err}
}

func names[T any](l []T, err error, name func(T) string) ([]string, error) {
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, name(x))
	}
	return out, err
}

// Folder returns the site's folder, or nil when it does not exist yet.
func (c *Client) Folder(ctx context.Context, p *Placement) (*object.Folder, error) {
	f, err := p.finder.Folder(ctx, p.FolderPath)
	var nf *find.NotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, Explain(err, "look up", "folder "+p.FolderPath)
	}
	return f, nil
}

// EnsureFolder creates the site's folder and every missing parent (the
// seed's TERRAFORM/Linux/linuxkit-dev), tolerating a concurrent creator.
func (c *Client) EnsureFolder(ctx context.Context, p *Placement) (*object.Folder, error) {
	cur := p.VMFolder
	rel := strings.TrimPrefix(p.FolderPath, p.VMFolder.InventoryPath)
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		if part == "" {
			continue
		}
		next := path.Join(cur.InventoryPath, part)
		f, err := p.finder.Folder(ctx, next)
		if err == nil {
			cur = f
			continue
		}
		nf, err := cur.CreateFolder(ctx, part)
		if err != nil {
			// Someone else made it between our look-up and create.
			if f, err2 := p.finder.Folder(ctx, next); err2 == nil {
				cur = f
				continue
			}
			return nil, Explain(err, "create", "folder "+next)
		}
		nf.InventoryPath = next
		c.Log.Info("created folder", "folder", next)
		cur = nf
	}
	return cur, nil
}

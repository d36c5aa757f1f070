// Package fleet converges vCenter onto the site file: Plan shows what would
// be created, changed or deleted per VM and why (Terraform-style), Apply
// does it (nested folders, ISO push, bounded parallel creates, one-time
// enrollment tokens stored only as hashes, store records for bootserve),
// and Destroy removes VMs. Ownership is the swarmboot.managed extraConfig
// marker, so an apply killed at any point converges when run again, with
// no duplicate and no leaked VM, and VMs swarmboot did not create are never
// touched.
package fleet

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
)

// Defaults.
const (
	DefaultParallel = 8
	DefaultTokenTTL = 24 * time.Hour
)

// Fleet ties a site file to a vCenter session and the appliance store.
type Fleet struct {
	Site  *site.Site
	VS    *vsphere.Client
	Store *store.Store
	Log   *slog.Logger // nil: discard

	Parallel int                          // concurrent VM operations; 0: DefaultParallel
	TokenTTL time.Duration                // enrollment token lifetime; 0: DefaultTokenTTL
	Progress func(string)                 // one line per finished step (nil: none)
	Now      func() time.Time             // nil: time.Now
	hook     func(vm, stage string) error // tests: fail or cancel at a stage

	// destroyParallel limits concurrent deletes (0: Parallel). Tests set
	// 1: govmomi's simulator races on concurrent VM destroys (its
	// Datastore.resolve vs RemoveReference), real vCenter does not.
	destroyParallel int
	progressMu      sync.Mutex
}

func (f *Fleet) log() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return f.Log
}

func (f *Fleet) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Fleet) parallel() int {
	if f.Parallel > 0 {
		return f.Parallel
	}
	return DefaultParallel
}

func (f *Fleet) destroyLimit() int {
	if f.destroyParallel > 0 {
		return f.destroyParallel
	}
	return f.parallel()
}

func (f *Fleet) ttl() time.Duration {
	if f.TokenTTL > 0 {
		return f.TokenTTL
	}
	return DefaultTokenTTL
}

func (f *Fleet) progress(format string, args ...any) {
	if f.Progress != nil {
		f.progressMu.Lock()
		defer f.progressMu.Unlock()
		f.Progress(fmt.Sprintf(format, args...))
	}
}

func (f *Fleet) at(vm, stage string) error {
	if f.hook != nil {
		return f.hook(vm, stage)
	}
	return nil
}

// image is where a group's ISO comes from and goes to.
type image struct {
	Local  string // local file to push ("" when already on a datastore)
	DSPath string // "[ds] swarmboot/name-sha.iso"
	File   string // path inside the datastore
}

// images resolves every iso-boot group's image to its datastore path.
func (f *Fleet) images(ds string) (map[string]image, error) {
	out := map[string]image{}
	for i := range f.Site.Groups {
		g := &f.Site.Groups[i]
		if g.Boot != "iso" {
			continue
		}
		p, onDS := f.Site.ImagePath(g)
		if onDS {
			out[g.Name] = image{DSPath: p}
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s:%d: group %s: image %s: %v: build it (swarmboot build) or point image: at an ISO", f.Site.Path, g.Line, g.Name, p, err)
		}
		file, err := vsphere.DatastoreFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: group %s: %w", f.Site.Path, g.Line, g.Name, err)
		}
		out[g.Name] = image{Local: p, File: file, DSPath: fmt.Sprintf("[%s] %s", ds, file)}
	}
	return out, nil
}

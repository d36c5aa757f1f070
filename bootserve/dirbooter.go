package bootserve

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DirBooter boots machines from the output directory of `swarmboot build`:
// an image NAME is the files NAME-kernel, NAME-initrd.img and (optional)
// NAME-cmdline. Machines lists per-machine images and extra kernel
// arguments; other machines boot Default, or the only image in Dir when
// Default is empty and there is exactly one, or are unknown.
type DirBooter struct {
	Dir      string
	Default  string                  // image for machines not in Machines
	Machines map[string]MachineEntry // by MAC in lowercase colon form (see NormalizeMachines)
}

// MachineEntry is one machine's boot choice.
type MachineEntry struct {
	Image string `json:"image,omitempty" yaml:"image,omitempty"` // "" → the default image
	Args  string `json:"args,omitempty" yaml:"args,omitempty"`   // appended to the image's command line
}

// NormalizeMachines rekeys m by canonical MAC, so that any MAC spelling
// can be used in a config file.
func NormalizeMachines(m map[string]MachineEntry) (map[string]MachineEntry, error) {
	out := make(map[string]MachineEntry, len(m))
	for k, v := range m {
		mac, err := net.ParseMAC(k)
		if err != nil {
			return nil, fmt.Errorf("machine %q: %w (want a MAC like 52:54:00:12:34:56)", k, err)
		}
		out[mac.String()] = v
	}
	return out, nil
}

// Images lists the images (names with a NAME-kernel file) in Dir.
func (d *DirBooter) Images() ([]string, error) {
	ents, err := os.ReadDir(d.Dir)
	if err != nil {
		return nil, fmt.Errorf("read artifacts directory: %w (run `swarmboot build -o %s` first)", err, d.Dir)
	}
	var out []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), "-kernel"); ok && e.Type().IsRegular() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Boot implements Booter.
func (d *DirBooter) Boot(_ context.Context, m Machine) (*Boot, error) {
	entry, known := d.Machines[m.MAC.String()]
	image := entry.Image
	if image == "" {
		image = d.Default
	}
	if image == "" {
		imgs, err := d.Images()
		if err != nil {
			return nil, err
		}
		if len(imgs) != 1 {
			if !known {
				return nil, fmt.Errorf("%s: %w (no default image among %d in %s)", m.MAC, ErrUnknown, len(imgs), d.Dir)
			}
			return nil, fmt.Errorf("machine %s has no image and %s holds %d images: set its image or --default-image", m.MAC, d.Dir, len(imgs))
		}
		image = imgs[0]
	}
	if strings.ContainsAny(image, `/\`) || image == ".." {
		return nil, fmt.Errorf("machine %s: image name %q must be a plain name", m.MAC, image)
	}
	kernel, initrd := image+"-kernel", image+"-initrd.img"
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(filepath.Join(d.Dir, f)); err != nil {
			return nil, fmt.Errorf("machine %s boots image %q but %s is missing: %w (run `swarmboot build`)", m.MAC, image, f, err)
		}
	}
	b := &Boot{Name: image, Kernel: kernel, Initrd: []string{initrd}, Args: entry.Args}
	if c, err := os.ReadFile(filepath.Join(d.Dir, image+"-cmdline")); err == nil {
		b.Cmdline = strings.Join(strings.Fields(string(c)), " ")
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("image %q: %w", image, err)
	}
	return b, nil
}

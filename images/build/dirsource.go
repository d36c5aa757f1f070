package build

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/swarmboot/swarmboot/images/rootfs"
)

// DirSource is a Source made from a directory tree on disk (an unpacked
// root filesystem) and a kernel file: for tests, benchmarks and images
// built outside the yml flow. Entries come in lexical order; owners,
// modes and device numbers are taken from the files.
type DirSource struct {
	Dir, Kernel, Cmdline string
}

// Assemble streams the tree.
func (d DirSource) Assemble(ctx context.Context, w rootfs.Writer) (*Rootfs, error) {
	kernel, err := os.ReadFile(d.Kernel)
	if err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	err = filepath.WalkDir(d.Dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(d.Dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		h := &rootfs.Header{Name: filepath.ToSlash(rel), Mode: fi.Mode()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			h.Uid, h.Gid = int(st.Uid), int(st.Gid)
			if fi.Mode()&fs.ModeDevice != 0 {
				h.Devmajor, h.Devminor = int64(unixMajor(st.Rdev)), int64(unixMinor(st.Rdev))
			}
		}
		switch {
		case fi.Mode().IsRegular():
			h.Size = fi.Size()
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return w.WriteEntry(h, f)
		case fi.Mode()&fs.ModeSymlink != 0:
			if h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		}
		return w.WriteEntry(h, nil)
	})
	if err != nil {
		return nil, err
	}
	return &Rootfs{Kernel: kernel, Cmdline: d.Cmdline}, nil
}

func unixMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func unixMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }

// Package lab makes the content of the lab image from Debian packages and
// will run the lab (issue 6): a Docker engine (docker.io, containerd, runc
// and the shared libraries they need), the kernel modules it needs, a
// busybox init that runs onboot steps and services the way a LinuxKit
// image's containers/ directories describe, and an onboot step that formats
// the VM's disk (ext4, only when it holds no filesystem) and mounts it at
// /var/lib/docker. Each piece is an OCI image (go-containerregistry) so the
// real builder assembles the lab image from linuxkit/lab.yml.
package lab

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/swarmboot/swarmboot/pkg/cpio"
)

// Entry is one file of a synthesized file tree.
type Entry struct {
	Name     string      // slash separated, relative ("usr/sbin/dockerd")
	Mode     fs.FileMode // type bits and permissions
	Linkname string      // symlink target
	Src      string      // host file with the content (regular files), or
	Data     []byte      // the content itself when Src == ""
	Devmajor int64
	Devminor int64
}

func (e *Entry) size() (int64, error) {
	if e.Mode.Type() != 0 {
		return 0, nil
	}
	if e.Src == "" {
		return int64(len(e.Data)), nil
	}
	st, err := os.Stat(e.Src)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (e *Entry) open() (io.ReadCloser, error) {
	if e.Src == "" {
		return io.NopCloser(bytes.NewReader(e.Data)), nil
	}
	return os.Open(e.Src)
}

// Tree is a set of entries; parent directories are implied.
type Tree struct{ m map[string]*Entry }

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{m: map[string]*Entry{}} }

func clean(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// Add adds or replaces an entry, creating its parent directories.
func (t *Tree) Add(e Entry) {
	e.Name = clean(e.Name)
	if e.Name == "" {
		return
	}
	for d := path.Dir(e.Name); d != "."; d = path.Dir(d) {
		if _, ok := t.m[d]; !ok {
			t.m[d] = &Entry{Name: d, Mode: fs.ModeDir | 0o755}
		}
	}
	t.m[e.Name] = &e
}

// File adds a regular file with the given content.
func (t *Tree) File(name string, mode fs.FileMode, data []byte) {
	t.Add(Entry{Name: name, Mode: mode.Perm(), Data: data})
}

// Symlink adds a symbolic link.
func (t *Tree) Symlink(name, target string) {
	t.Add(Entry{Name: name, Mode: fs.ModeSymlink | 0o777, Linkname: target})
}

// Dir adds a directory.
func (t *Tree) Dir(name string, mode fs.FileMode) {
	t.Add(Entry{Name: name, Mode: fs.ModeDir | mode.Perm()})
}

// Has reports whether name is in the tree.
func (t *Tree) Has(name string) bool { _, ok := t.m[clean(name)]; return ok }

// Get returns the entry of name or nil.
func (t *Tree) Get(name string) *Entry { return t.m[clean(name)] }

// Merge adds every entry of o (o wins).
func (t *Tree) Merge(o *Tree) {
	for _, e := range o.m {
		t.Add(*e)
	}
}

// Graft adds every entry of o under directory prefix.
func (t *Tree) Graft(prefix string, o *Tree) {
	for _, e := range o.m {
		c := *e
		c.Name = path.Join(prefix, e.Name)
		t.Add(c)
	}
}

// Names returns the sorted names (a directory sorts before its content).
func (t *Tree) Names() []string {
	names := make([]string, 0, len(t.m))
	for n := range t.m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return pathLess(names[i], names[j]) })
	return names
}

// pathLess orders by path elements, so "a/b" comes right after "a".
func pathLess(a, b string) bool {
	return strings.ReplaceAll(a, "/", "\x00") < strings.ReplaceAll(b, "/", "\x00")
}

var epoch = time.Unix(0, 0)

// WriteTar writes the tree as a tar stream (an OCI layer), prefixed by
// prefix ("" for none).
func (t *Tree) WriteTar(w io.Writer, prefix string) error {
	tw := tar.NewWriter(w)
	for _, n := range t.Names() {
		e := t.m[n]
		size, err := e.size()
		if err != nil {
			return fmt.Errorf("lab: %s: %w", n, err)
		}
		h := &tar.Header{Name: path.Join(prefix, n), Mode: int64(e.Mode.Perm()), Size: size, ModTime: epoch, Format: tar.FormatPAX}
		switch e.Mode.Type() {
		case fs.ModeDir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case fs.ModeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Linkname
		case fs.ModeDevice | fs.ModeCharDevice:
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, e.Devmajor, e.Devminor
		case 0:
			h.Typeflag = tar.TypeReg
		default:
			return fmt.Errorf("lab: %s: unsupported file type %v", n, e.Mode.Type())
		}
		if e.Mode&fs.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if size > 0 {
			r, err := e.open()
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, r, size)
			r.Close()
			if err != nil {
				return fmt.Errorf("lab: %s: %w", n, err)
			}
		}
	}
	return tw.Close()
}

// WriteCPIO writes the tree into a newc archive (without closing it).
func (t *Tree) WriteCPIO(w *cpio.Writer) error {
	for _, n := range t.Names() {
		e := t.m[n]
		size, err := e.size()
		if err != nil {
			return fmt.Errorf("lab: %s: %w", n, err)
		}
		h := &cpio.Header{Name: n, Mode: e.Mode, Size: size, Linkname: e.Linkname, ModTime: epoch, Devmajor: e.Devmajor, Devminor: e.Devminor}
		if err := w.WriteHeader(h); err != nil {
			return fmt.Errorf("lab: %s: %w", n, err)
		}
		if size > 0 {
			r, err := e.open()
			if err != nil {
				return err
			}
			_, err = io.CopyN(w, r, size)
			r.Close()
			if err != nil {
				return fmt.Errorf("lab: %s: %w", n, err)
			}
		}
	}
	return nil
}

// Layer returns the tree as an uncompressed-on-demand OCI layer.
func (t *Tree) Layer() (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(t.WriteTar(pw, "")) }()
		return pr, nil
	})
}

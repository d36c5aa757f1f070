package rootfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// te is one entry of a test layer: a name ending in "/" is a directory,
// link "=>" target is a hard link, "->" a symlink.
type te struct {
	name, data string
	link       string
	hard       bool
	mode       int64
}

func layer(t testing.TB, entries ...te) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: tar.TypeReg, Size: int64(len(e.data))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		switch {
		case e.name[len(e.name)-1] == '/':
			h.Typeflag, h.Size = tar.TypeDir, 0
			if e.mode == 0 {
				h.Mode = 0o755
			}
		case e.hard:
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, e.link, 0
		case e.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

var errNotFound = errors.New("not found in store; import it with swarmboot image import FILE")

type memSource map[string]v1.Image

func (m memSource) Image(ref, platform string) (v1.Image, error) {
	if platform != "linux/amd64" {
		return nil, errors.New("unexpected platform " + platform)
	}
	if img, ok := m[ref]; ok {
		return img, nil
	}
	return nil, errors.New("image " + ref + ": " + errNotFound.Error())
}

type rec struct {
	h    Header
	data string
}

// recorder keeps the stream and checks the Writer contract as it goes.
type recorder struct {
	t       testing.TB
	entries []rec
	byName  map[string]int
}

func newRecorder(t testing.TB) *recorder { return &recorder{t: t, byName: map[string]int{}} }

func (r *recorder) WriteEntry(h *Header, rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	if int64(len(b)) != h.Size {
		r.t.Errorf("%s: size %d but %d bytes", h.Name, h.Size, len(b))
	}
	if h.Name == "" || h.Name[0] == '/' || path.Clean(h.Name) != h.Name {
		r.t.Errorf("bad name %q", h.Name)
	}
	if dir := path.Dir(h.Name); dir != "." {
		i, ok := r.byName[dir]
		if !ok || !r.entries[i].h.Mode.IsDir() {
			r.t.Errorf("%s written before its directory %s", h.Name, dir)
		}
	}
	if h.IsHardlink() {
		if _, ok := r.byName[h.Linkname]; !ok {
			r.t.Errorf("hard link %s before its target %s", h.Name, h.Linkname)
		}
	}
	r.byName[h.Name] = len(r.entries)
	r.entries = append(r.entries, rec{*h, string(b)})
	return nil
}

func (r *recorder) get(name string) (rec, bool) {
	i, ok := r.byName[name]
	if !ok {
		return rec{}, false
	}
	return r.entries[i], true
}

func (r *recorder) count(name string) int {
	n := 0
	for _, e := range r.entries {
		if e.h.Name == name {
			n++
		}
	}
	return n
}

func (r *recorder) mustFile(name, data string) {
	r.t.Helper()
	e, ok := r.get(name)
	if !ok {
		r.t.Errorf("missing %s", name)
		return
	}
	if e.h.Mode.Type() != 0 || e.data != data {
		r.t.Errorf("%s: mode %v data %q, want %q", name, e.h.Mode, e.data, data)
	}
}

func (r *recorder) mustType(name string, typ fs.FileMode) {
	r.t.Helper()
	e, ok := r.get(name)
	if !ok {
		r.t.Errorf("missing %s", name)
	} else if e.h.Mode.Type() != typ {
		r.t.Errorf("%s: type %v, want %v", name, e.h.Mode.Type(), typ)
	}
}

func (r *recorder) mustNot(name string) {
	r.t.Helper()
	if _, ok := r.get(name); ok {
		r.t.Errorf("%s should not be there", name)
	}
}

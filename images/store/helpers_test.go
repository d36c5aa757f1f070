package store

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testImage is a random two-layer image for platform "os/arch[/variant]".
func testImage(t testing.TB, platform string) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testIndex is a multi-platform index of one image per platform.
func testIndex(t testing.TB, platforms ...string) (v1.ImageIndex, map[string]v1.Image) {
	t.Helper()
	imgs := map[string]v1.Image{}
	var adds []mutate.IndexAddendum
	for _, ps := range platforms {
		img := testImage(t, ps)
		imgs[ps] = img
		p, _ := v1.ParsePlatform(ps)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	return idx, imgs
}

// ociArchive writes an OCI archive (tar of an OCI layout) holding the
// given appendables, each annotated with its name, and returns its path.
func ociArchive(t testing.TB, entries map[string]mutate.Appendable, annotation string) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for n, a := range entries {
		var ann map[string]string
		if n != "" {
			ann = map[string]string{annotation: n}
		}
		switch v := a.(type) {
		case v1.Image:
			err = p.AppendImage(v, layout.WithAnnotations(ann))
		case v1.ImageIndex:
			err = p.AppendIndex(v, layout.WithAnnotations(ann))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "archive.tar")
	tarDir(t, filepath.Join(dir, "layout"), out)
	return out
}

// tarDir writes the files under dir into a tar at out.
func tarDir(t testing.TB, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// dockerSave writes a `docker save`-format tarball of img tagged tags.
func dockerSave(t testing.TB, img v1.Image, tags ...string) string {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	for _, s := range tags {
		tag, err := name.NewTag(s)
		if err != nil {
			t.Fatal(err)
		}
		refs[tag] = img
	}
	out := filepath.Join(t.TempDir(), "saved.tar")
	if err := tarball.MultiRefWriteToFile(out, refs); err != nil {
		t.Fatal(err)
	}
	return out
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func digestOf(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// sameLayers fails unless a and b have the same layer digests.
func sameLayers(t testing.TB, a, b v1.Image) {
	t.Helper()
	la, err := a.Layers()
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(la) != len(lb) {
		t.Fatalf("%d layers, want %d", len(lb), len(la))
	}
	for i := range la {
		da, _ := la[i].DiffID()
		db, _ := lb[i].DiffID()
		if da != db {
			t.Fatalf("layer %d diffid %s, want %s", i, db, da)
		}
	}
}

package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every fixture file, so the same inputs
// give the same layer digests.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// tarBuilder collects the entries of one layer and writes them sorted by
// name, directories implied by files created first.
type tarBuilder struct {
	ents map[string]*tarEntry
}

type tarEntry struct {
	hdr  tar.Header
	data []byte
	path string // regular file content read from disk at write time
}

func newTar() *tarBuilder { return &tarBuilder{ents: map[string]*tarEntry{}} }

func (b *tarBuilder) dirs(name string) {
	for d := filepath.Dir(name); d != "." && d != "/"; d = filepath.Dir(d) {
		if _, ok := b.ents[d+"/"]; !ok {
			b.ents[d+"/"] = &tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}}
		}
	}
}

func (b *tarBuilder) dir(name string, mode int64) {
	b.dirs(name + "/x")
	b.ents[name+"/"].hdr.Mode = mode
}

func (b *tarBuilder) file(name string, mode int64, data []byte) {
	b.dirs(name)
	b.ents[name] = &tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data: data}
}

// diskFile adds the file at path (read when the layer is written).
func (b *tarBuilder) diskFile(name string, mode int64, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	b.dirs(name)
	b.ents[name] = &tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: fi.Size()}, path: path}
	return nil
}

// tree adds every file and directory under root as prefix/<rel>.
func (b *tarBuilder) tree(prefix, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			b.dir(name, 0o755)
		case fi.Mode().IsRegular():
			return b.diskFile(name, int64(fi.Mode().Perm()), p)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			b.symlink(name, target)
		}
		return nil
	})
}

func (b *tarBuilder) symlink(name, target string) {
	b.dirs(name)
	b.ents[name] = &tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func (b *tarBuilder) charDev(name string, mode, major, minor int64) {
	b.dirs(name)
	b.ents[name] = &tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: mode, Devmajor: major, Devminor: minor}}
}

// bytes writes the tar: entries sorted, owned by root, dated epoch.
func (b *tarBuilder) bytes() ([]byte, error) {
	names := make([]string, 0, len(b.ents))
	for n := range b.ents {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := b.ents[n]
		h := e.hdr
		h.ModTime, h.Uname, h.Gname, h.Format = epoch, "root", "root", tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", n, err)
		}
		switch {
		case e.path != "":
			f, err := os.Open(e.path)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("tar %s: %w", n, err)
			}
		case len(e.data) > 0:
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// layer turns the builder into an OCI layer (gzip, fast level).
func (b *tarBuilder) layer() (v1.Layer, error) {
	data, err := b.bytes()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithMediaType(types.OCILayer))
}

// imageConfig is what a fixture image's config carries.
type imageConfig struct {
	Cmd    []string
	Env    []string
	Labels map[string]string
}

// image builds an OCI linux/amd64 image of layers with cfg.
func image(cfg imageConfig, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Cmd = cfg.Cmd
	cf.Config.Env = cfg.Env
	cf.Config.Labels = cfg.Labels
	if len(cf.Config.Env) == 0 {
		cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	return mutate.ConfigFile(img, cf)
}

// cleanRel is name without a leading "/" or "./".
func cleanRel(name string) string {
	return strings.TrimPrefix(strings.TrimPrefix(name, "./"), "/")
}

package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestImportDockerSave(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	img := testImage(t, "linux/amd64")
	file := dockerSave(t, img, "linuxkit/init:v1", "registry.example:5000/init:v1")
	refs, err := s.Import(context.Background(), file, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(refs) // go-containerregistry writes RepoTags in map order
	if strings.Join(refs, " ") != "docker.io/linuxkit/init:v1 registry.example:5000/init:v1" {
		t.Fatalf("refs %q", refs)
	}
	for _, r := range refs {
		got, err := s.Image(r, "")
		if err != nil {
			t.Fatal(err)
		}
		sameLayers(t, img, got)
	}
}

// legacySaveOf builds the classic `docker save` layout by hand:
// uncompressed <id>/layer.tar files (a repeated layer is a symlink to the
// first, as dockerd writes it), <config>.json, manifest.json, repositories.
// corrupt, when set, flips a byte of the first layer.
func legacySaveOf(t *testing.T, img v1.Image, tag string, corrupt bool) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	layers, _ := img.Layers()
	var names []string
	first := map[v1.Hash]string{}
	for i, l := range layers {
		b := uncompressed(t, l)
		if corrupt && i == 0 {
			b[len(b)/2] ^= 0xff
		}
		dir := strings.Repeat(string(rune('a'+i)), 64)
		n := dir + "/layer.tar"
		d, _ := l.DiffID()
		if prev, ok := first[d]; ok {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: "../" + prev, Mode: 0o777})
		} else {
			add(n, b)
			first[d] = n
		}
		names = append(names, n)
	}
	cfg, _ := img.RawConfigFile()
	cn, _ := img.ConfigName()
	add(cn.Hex+".json", cfg)
	mf, _ := json.Marshal([]map[string]any{{"Config": cn.Hex + ".json", "RepoTags": []string{tag}, "Layers": names}})
	add("manifest.json", mf)
	add("repositories", []byte(`{"busybox":{"saved":"x"}}`))
	tw.Close()
	file := filepath.Join(t.TempDir(), "legacy.tar")
	os.WriteFile(file, buf.Bytes(), 0o644)
	return file
}

func uncompressed(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportLegacyDockerSave(t *testing.T) {
	t.Parallel()
	img := testImage(t, "linux/amd64")
	s := openStore(t)
	refs, err := s.Import(context.Background(), legacySaveOf(t, img, "busybox:saved", false), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0] != "docker.io/library/busybox:saved" {
		t.Fatalf("refs %q", refs)
	}
	got, err := s.Image("busybox:saved", "")
	if err != nil {
		t.Fatal(err)
	}
	// The config (docker's image ID) is kept byte for byte.
	if a, b := digestOfConfig(t, img), digestOfConfig(t, got); a != b {
		t.Fatalf("config %s, want %s", b, a)
	}
	want, _ := img.Layers()
	have, _ := got.Layers()
	if len(have) != len(want) {
		t.Fatalf("%d layers, want %d", len(have), len(want))
	}
	for i := range want {
		if !bytes.Equal(uncompressed(t, want[i]), uncompressed(t, have[i])) {
			t.Fatalf("layer %d content differs", i)
		}
	}

	_, err = openStore(t).Import(context.Background(), legacySaveOf(t, img, "busybox:bad", true), ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "the archive is corrupt") {
		t.Fatalf("corrupt layer: %v", err)
	}
}

// TestImportLegacySymlinkedLayer: dockerd links a repeated layer.
func TestImportLegacySymlinkedLayer(t *testing.T) {
	t.Parallel()
	l, err := random.Layer(512, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l, l)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	if _, err := s.Import(context.Background(), legacySaveOf(t, img, "dup/layers:v1", false), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Image("dup/layers:v1", "")
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := got.Layers()
	if len(ls) != 2 || !bytes.Equal(uncompressed(t, ls[1]), uncompressed(t, l)) {
		t.Fatal("symlinked layer not stored")
	}
}

func digestOfConfig(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alpine":                                             "docker.io/library/alpine:latest",
		"alpine:3.19":                                        "docker.io/library/alpine:3.19",
		"linuxkit/init:v1.2.0":                               "docker.io/linuxkit/init:v1.2.0",
		"docker.io/linuxkit/init:v1.2.0":                     "docker.io/linuxkit/init:v1.2.0",
		"index.docker.io/linuxkit/runc:v1.1.0":               "docker.io/linuxkit/runc:v1.1.0",
		"localhost:5000/a/b:c":                               "localhost:5000/a/b:c",
		"ghcr.io/x/y@sha256:" + strings.Repeat("a", 64):      "ghcr.io/x/y@sha256:" + strings.Repeat("a", 64),
		"linuxkit/init:v1@sha256:" + strings.Repeat("b", 64): "docker.io/linuxkit/init:v1",
		"swarmboot/fixture-kernel:v1":                        "docker.io/swarmboot/fixture-kernel:v1",
	} {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER/case", "a@sha256:short", "a b"} {
		if got, err := Normalize(bad); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", bad, got)
		}
	}
}

func TestWriteImageListRemove(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	img := testImage(t, "linux/amd64")
	if err := s.Write("linuxkit/init:v1", img); err != nil {
		t.Fatal(err)
	}
	got, err := s.Image("docker.io/linuxkit/init:v1", "")
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, got) != digestOf(t, img) {
		t.Fatalf("stored digest %s, want %s", digestOf(t, got), digestOf(t, img))
	}
	sameLayers(t, img, got)

	// A second name for the same image shares its blobs.
	if err := s.Write("other/name:v2", img); err != nil {
		t.Fatal(err)
	}
	ents, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || ents[0].Ref != "docker.io/linuxkit/init:v1" || ents[1].Ref != "docker.io/other/name:v2" {
		t.Fatalf("List = %+v", ents)
	}
	e := ents[0]
	cfgName, _ := img.ConfigName()
	if e.Platform != "linux/amd64" || e.Digest != digestOf(t, img).String() || e.Manifest != e.Digest || e.Size < 2048 || e.Config != cfgName.String() {
		t.Fatalf("entry %+v", e)
	}

	// The layout is what LinuxKit's cache reads: index.json entries named
	// by org.opencontainers.image.ref.name.
	var idx v1.IndexManifest
	b, _ := os.ReadFile(filepath.Join(s.Dir(), "index.json"))
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 || idx.Manifests[0].Annotations[AnnotationRefName] != "docker.io/linuxkit/init:v1" {
		t.Fatalf("index.json %s", b)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "oci-layout")); err != nil {
		t.Fatal(err)
	}

	blobs := countBlobs(t, s)
	if err := s.Remove("linuxkit/init:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image("linuxkit/init:v1", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after rm: %v", err)
	}
	if n := countBlobs(t, s); n != blobs {
		t.Fatalf("shared blobs were collected: %d → %d", blobs, n)
	}
	if _, err := s.Image("other/name:v2", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("other/name:v2"); err != nil {
		t.Fatal(err)
	}
	if n := countBlobs(t, s); n != 0 {
		t.Fatalf("%d blobs left after removing every image", n)
	}
	if err := s.Remove("other/name:v2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second rm: %v", err)
	}
}

func countBlobs(t *testing.T, s *Store) int {
	t.Helper()
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestNotFoundTellsWhatToDo(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	_, err := s.Image("linuxkit/sshd:v1.0.0", "")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"docker.io/linuxkit/sshd:v1.0.0", "swarmboot image import FILE", "swarmboot image pull docker.io/linuxkit/sshd:v1.0.0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// A single-platform image asked for another platform.
	if err := s.Write("a/b:c", testImage(t, "linux/arm64")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Image("a/b:c", "")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "--platform linux/amd64") || !strings.Contains(err.Error(), "linux/arm64") {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.Image("a/b:c", "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image("a/b:c", "linux"); err == nil || !strings.Contains(err.Error(), "os/arch") {
		t.Fatalf("bad platform: %v", err)
	}
}

func TestByDigest(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	img := testImage(t, "linux/amd64")
	if err := s.Write("x/y:1", img); err != nil {
		t.Fatal(err)
	}
	d := digestOf(t, img).String()
	for _, ref := range []string{"x/y@" + d, "x/y:1@" + d, "somewhere/else@" + d} {
		got, err := s.Image(ref, "")
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if digestOf(t, got).String() != d {
			t.Fatalf("%s: wrong image", ref)
		}
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	if _, err := s.Image("x/y:1@"+wrong, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pinned to another digest: %v", err)
	}
}

func TestImportOCIArchive(t *testing.T) {
	t.Parallel()
	img := testImage(t, "linux/amd64")
	for _, tc := range []struct {
		annotation, name, want string
	}{
		{AnnotationRefName, "docker.io/linuxkit/init:v1", "docker.io/linuxkit/init:v1"}, // linuxkit cache export
		{annotationContainerdName, "busybox:1.36", "docker.io/library/busybox:1.36"},    // docker save v25+
	} {
		s := openStore(t)
		file := ociArchive(t, map[string]mutate.Appendable{tc.name: img}, tc.annotation)
		refs, err := s.Import(context.Background(), file, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(refs) != 1 || refs[0] != tc.want {
			t.Fatalf("refs %q, want %s", refs, tc.want)
		}
		got, err := s.Image(tc.want, "")
		if err != nil {
			t.Fatal(err)
		}
		if digestOf(t, got) != digestOf(t, img) {
			t.Fatal("digest changed on import")
		}
		sameLayers(t, img, got)
		// Staging is gone.
		if _, err := os.Stat(s.tmpDir()); !os.IsNotExist(err) {
			t.Fatalf("staging left behind: %v", err)
		}
	}
}

func TestImportUnnamedNeedsRef(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	img := testImage(t, "linux/amd64")
	file := ociArchive(t, map[string]mutate.Appendable{"": img}, AnnotationRefName)
	_, err := s.Import(context.Background(), file, ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "--ref NAME") {
		t.Fatalf("err = %v", err)
	}
	refs, err := s.Import(context.Background(), file, ImportOptions{Ref: "mine/img:v3"})
	if err != nil || len(refs) != 1 || refs[0] != "docker.io/mine/img:v3" {
		t.Fatalf("refs %q, err %v", refs, err)
	}
}

func TestImportMultiPlatform(t *testing.T) {
	t.Parallel()
	idx, imgs := testIndex(t, "linux/amd64", "linux/arm64", "linux/arm/v7")
	file := ociArchive(t, map[string]mutate.Appendable{"docker.io/linuxkit/sshd:v1": idx}, AnnotationRefName)

	s := openStore(t)
	if _, err := s.Import(context.Background(), file, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Image("linuxkit/sshd:v1", "")
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, got) != digestOf(t, imgs["linux/amd64"]) {
		t.Fatal("default platform did not pick linux/amd64")
	}
	// Only amd64 was stored; arm64 is listed in the index but absent.
	_, err = s.Image("linuxkit/sshd:v1", "linux/arm64")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "--platform linux/arm64") {
		t.Fatalf("arm64: %v", err)
	}
	ents, _ := s.List()
	if len(ents) != 1 || ents[0].Platform != "linux/amd64" || ents[0].Manifest != digestOf(t, imgs["linux/amd64"]).String() {
		t.Fatalf("List %+v", ents)
	}
	idxDigest, _ := idx.Digest()
	if ents[0].Digest != idxDigest.String() {
		t.Fatalf("entry digest %s, want the index %s", ents[0].Digest, idxDigest)
	}

	// Adding arm/v7 keeps the same index and adds its blobs.
	if _, err := s.Import(context.Background(), file, ImportOptions{Platform: "linux/arm/v7"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"linux/amd64", "linux/arm/v7"} {
		got, err := s.Image("linuxkit/sshd:v1", p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if digestOf(t, got) != digestOf(t, imgs[p]) {
			t.Fatalf("%s: wrong image", p)
		}
	}
	// The pinned index digest resolves too, and so does one platform's
	// manifest digest.
	if _, err := s.Image("linuxkit/sshd:v1@"+idxDigest.String(), "linux/arm/v7"); err != nil {
		t.Fatal(err)
	}
	v7 := digestOf(t, imgs["linux/arm/v7"])
	got, err = s.Image("linuxkit/sshd@"+v7.String(), "")
	if err != nil || digestOf(t, got) != v7 {
		t.Fatalf("by platform manifest digest: %v", err)
	}
	arm64 := digestOf(t, imgs["linux/arm64"])
	if _, err := s.Image("linuxkit/sshd@"+arm64.String(), ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a manifest that was not imported resolved: %v", err)
	}

	// A platform the index lacks is refused at import.
	_, err = s.Import(context.Background(), file, ImportOptions{Platform: "linux/s390x"})
	if err == nil || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "linux/arm64") {
		t.Fatalf("s390x: %v", err)
	}

	all := openStore(t)
	if _, err := all.Import(context.Background(), file, ImportOptions{Platform: "all"}); err != nil {
		t.Fatal(err)
	}
	ents, _ = all.List()
	if len(ents) != 3 {
		t.Fatalf("all platforms: %+v", ents)
	}
}

func TestImportGzipped(t *testing.T) {
	t.Parallel()
	img := testImage(t, "linux/amd64")
	plain := dockerSave(t, img, "gz/img:v1")
	b, _ := os.ReadFile(plain)
	gz := filepath.Join(t.TempDir(), "img.tar.gz")
	os.WriteFile(gz, gzipBytes(t, b), 0o644)
	s := openStore(t)
	refs, err := s.Import(context.Background(), gz, ImportOptions{})
	if err != nil || len(refs) != 1 {
		t.Fatalf("refs %q err %v", refs, err)
	}
}

func TestImportConcurrent(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "images")
	var files []string
	for i := range 6 {
		files = append(files, dockerSave(t, testImage(t, "linux/amd64"), "conc/img:v"+string(rune('0'+i))))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(files))
	for _, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(dir) // separate handles, as separate processes would
			if err == nil {
				_, err = s.Import(context.Background(), f, ImportOptions{})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := Open(dir)
	ents, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(files) {
		t.Fatalf("%d images listed after %d concurrent imports", len(ents), len(files))
	}
}

func TestOpenCorruptIndex(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	os.WriteFile(filepath.Join(s.Dir(), "index.json"), []byte("{not json"), 0o644)
	if _, err := Open(s.Dir()); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("err = %v", err)
	}
}

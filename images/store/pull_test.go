package store

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry is an in-memory registry on loopback.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPullIndex(t *testing.T) {
	t.Parallel()
	host := testRegistry(t)
	idx, imgs := testIndex(t, "linux/amd64", "linux/arm64")
	ref := host + "/linuxkit/init:v1"
	tag, _ := name.NewTag(ref)
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	ctx := context.Background()
	if err := s.Pull(ctx, ref, ""); err != nil {
		t.Fatal(err)
	}
	got, err := s.Image(ref, "")
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, got) != digestOf(t, imgs["linux/amd64"]) {
		t.Fatal("pulled the wrong platform")
	}
	sameLayers(t, imgs["linux/amd64"], got)
	if _, err := s.Image(ref, "linux/arm64"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("arm64 was not asked for but is there: %v", err)
	}
	if err := s.Pull(ctx, ref, "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(ref, "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	if err := s.Pull(ctx, ref, "linux/riscv64"); err == nil || !strings.Contains(err.Error(), "linux/riscv64") {
		t.Fatalf("riscv64: %v", err)
	}

	// By digest.
	d, _ := idx.Digest()
	byDigest := host + "/linuxkit/init@" + d.String()
	s2 := openStore(t)
	if err := s2.Pull(ctx, byDigest, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Image(byDigest, ""); err != nil {
		t.Fatal(err)
	}
}

func TestPullSingleImage(t *testing.T) {
	t.Parallel()
	host := testRegistry(t)
	img := testImage(t, "linux/arm64")
	ref := host + "/x/arm:v1"
	tag, _ := name.NewTag(ref)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	err := s.Pull(context.Background(), ref, "")
	if err == nil || !strings.Contains(err.Error(), "--platform linux/arm64") {
		t.Fatalf("pulled an arm64-only image for amd64: %v", err)
	}
	if err := s.Pull(context.Background(), ref, "linux/arm64"); err != nil {
		t.Fatal(err)
	}
	err = s.Pull(context.Background(), host+"/x/missing:v1", "")
	if err == nil || !strings.Contains(err.Error(), "swarmboot image import") {
		t.Fatalf("missing: %v", err)
	}
}

// TestCrashLeftovers: what a writer killed mid-way leaves (staging, temp
// blobs, a temp index.json) does not break the store and is cleaned by the
// next writer.
func TestCrashLeftovers(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	if err := s.Write("a/b:c", testImage(t, "linux/amd64")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.indexPath())
	os.MkdirAll(filepath.Join(s.tmpDir(), "oci-123", "blobs", "sha256"), 0o755)
	os.WriteFile(filepath.Join(s.blobDir(), ".tmp-0123456789ab-42"), []byte("half a layer"), 0o644)
	os.WriteFile(filepath.Join(s.dir, ".index.json.tmp-99"), []byte("{half"), 0o644)

	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Image("a/b:c", ""); err != nil {
		t.Fatal(err)
	}
	if err := s2.Write("d/e:f", testImage(t, "linux/amd64")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.tmpDir()); !os.IsNotExist(err) {
		t.Fatal("staging of a crashed import survived the next write")
	}
	if _, err := os.Stat(filepath.Join(s.dir, ".index.json.tmp-99")); !os.IsNotExist(err) {
		t.Fatal("a crashed writer's temp index.json survived the next write")
	}
	if err := s2.Remove("d/e:f"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.blobDir(), ".tmp-0123456789ab-42")); !os.IsNotExist(err) {
		t.Fatal("a crashed writer's temp blob survived gc")
	}
	after, _ := os.ReadFile(s.indexPath())
	if string(before) != string(after) {
		t.Fatalf("index.json changed:\n%s\n%s", before, after)
	}
}

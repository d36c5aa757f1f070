package build

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
)

func TestCheckImagesMissing(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := yml.Parse("w.yml", []byte("kernel:\n  image: example.org/kernel:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/init:2\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckImages(context.Background(), c, s, store.DefaultPlatform, false)
	var me *MissingImagesError
	if !errors.As(err, &me) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want MissingImagesError", err)
	}
	err2 := CheckImages(context.Background(), c, s, store.DefaultPlatform, false, "example.org/init:2")
	if !errors.As(err2, &me) || len(me.Refs) != 1 || me.Refs[0] != "example.org/kernel:1" {
		t.Errorf("with init skipped: %v", err2)
	}
	msg := err.Error()
	for _, want := range []string{"example.org/kernel:1", "example.org/init:2", "swarmboot image import", "--pull"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// TestCheckImagesPull: with pull, missing images come from a registry (an
// in-memory one on loopback here) and are then in the store.
func TestCheckImagesPull(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	var refs []string
	for _, r := range []string{"/k/kernel:1", "/k/init:2"} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := name.NewTag(host + r)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, host+r)
	}
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := yml.Parse("w.yml", []byte("kernel:\n  image: "+refs[0]+"\ninit:\n  - "+refs[1]+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckImages(context.Background(), c, s, store.DefaultPlatform, false); err == nil {
		t.Fatal("images reported present before the pull")
	}
	if err := CheckImages(context.Background(), c, s, store.DefaultPlatform, true); err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if _, err := s.Image(r, store.DefaultPlatform); err != nil {
			t.Errorf("%s not in the store after the pull: %v", r, err)
		}
	}
}

// Package imagetest synthesizes small OCI images from Debian packages so a
// whole linuxkit.yml builds and boots offline in tests: a LinuxKit-style
// kernel image (/kernel from linux-image-amd64, /kernel.tar with a chosen
// set of modules), an init image (busybox-static and an /init that prints
// Marker and the kernel command line, then powers off), and busybox onboot
// and service images carrying org.mobyproject.config labels.
//
// The images are built once per machine (per kernel/busybox version) into
// an OCI layout under debfix.CacheDir()/imagetest and copied into each
// test's store, so many tests stay fast:
//
//	s, _ := store.Open(t.TempDir())
//	fx := imagetest.Populate(t, s)
//	cfg, _ := yml.Load(imagetest.YML(t, "fixture.yml"))
package imagetest

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/pkg/debfix"
)

// Marker starts the line the fixture /init prints:
// "SWARMBOOT-FIXTURE-INIT cmdline=<the kernel command line>".
const Marker = "SWARMBOOT-FIXTURE-INIT"

// References of the fixture images (as a yml names them; the store keeps
// them as docker.io/swarmboot/...).
const (
	KernelRef  = "swarmboot/fixture-kernel:v1"
	InitRef    = "swarmboot/fixture-init:v1"
	OnbootRef  = "swarmboot/fixture-onboot:v1"
	ServiceRef = "swarmboot/fixture-service:v1"
)

// generation changes whenever the images' content changes, so stale caches
// are not reused.
const generation = "imagetest-2"

// Fixture names the images Populate stored.
type Fixture struct {
	Kernel, Init, Onboot, Service string // references, e.g. "swarmboot/fixture-kernel:v1"
	KernelVersion                 string // e.g. "6.1.0-28-amd64"
}

//go:embed testdata/*.yml
var ymls embed.FS

// Populate stores the fixture images in s (building them the first time on
// this machine) and returns their references. It skips the test when
// apt-get or dpkg-deb is missing and fails it on any other error.
func Populate(tb testing.TB, s *store.Store) Fixture {
	tb.Helper()
	fx, err := Build(tb.Context(), s)
	if err != nil {
		if errors.Is(err, debfix.ErrNoApt) || errors.Is(err, exec.ErrNotFound) {
			tb.Skipf("imagetest: fixture images come from Debian packages: %v (install apt-get/dpkg, run `make deps`)", err)
		}
		tb.Fatalf("imagetest: %v", err)
	}
	return fx
}

// Build is Populate for code that is not a test (the demo command): it
// stores the fixture images in s and returns their references.
func Build(ctx context.Context, s *store.Store) (Fixture, error) {
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		return Fixture{}, err
	}
	bb, err := debfix.Busybox(ctx)
	if err != nil {
		return Fixture{}, err
	}
	cache, err := cached(ctx, k, bb)
	if err != nil {
		return Fixture{}, err
	}
	for _, ref := range []string{KernelRef, InitRef, OnbootRef, ServiceRef} {
		img, err := cache.Image(ref, "")
		if err != nil {
			return Fixture{}, fmt.Errorf("fixture cache %s: %w", cache.Dir(), err)
		}
		if err := s.Write(ref, img); err != nil {
			return Fixture{}, err
		}
	}
	return Fixture{Kernel: KernelRef, Init: InitRef, Onboot: OnbootRef, Service: ServiceRef, KernelVersion: k.Version}, nil
}

// cacheKey identifies the inputs of the fixture images.
func cacheKey(k *debfix.Kernel, bb string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%s\n%s\n", generation, k.Version, InitScript, OnbootLabel, ServiceLabel, strings.Join(Modules, ","))
	for _, p := range []string{k.Vmlinuz, bb} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// cached returns the store under debfix.CacheDir()/imagetest holding the
// fixture images for these inputs, building it under a file lock when it
// is missing or incomplete.
func cached(ctx context.Context, k *debfix.Kernel, bb string) (*store.Store, error) {
	key, err := cacheKey(k, bb)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(debfix.CacheDir(), "imagetest")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("imagetest cache: %w (set $SWARMBOOT_FIXTURES to a writable directory)", err)
	}
	dir := filepath.Join(root, key)
	done := filepath.Join(dir, "complete")
	if _, err := os.Stat(done); err == nil {
		return store.Open(dir)
	}
	lf, err := os.OpenFile(filepath.Join(root, key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("imagetest cache lock: %w", err)
	}
	if _, err := os.Stat(done); err == nil {
		return store.Open(dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	s, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	imgs, err := buildImages(ctx, k, bb)
	if err != nil {
		return nil, err
	}
	for _, ref := range []string{KernelRef, InitRef, OnbootRef, ServiceRef} {
		if err := s.Write(ref, imgs[ref]); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(done, []byte(key+"\n"), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

func buildImages(ctx context.Context, k *debfix.Kernel, bb string) (map[string]v1.Image, error) {
	kern, err := kernelImage(ctx, k)
	if err != nil {
		return nil, err
	}
	initImg, onboot, service, err := userlandImages(ctx, bb)
	if err != nil {
		return nil, err
	}
	return map[string]v1.Image{KernelRef: kern, InitRef: initImg, OnbootRef: onboot, ServiceRef: service}, nil
}

// YML writes the embedded testdata yml name ("fixture.yml": kernel, init,
// onboot, service and files; "minimal.yml": kernel and init) into a
// temporary directory and returns its path.
func YML(tb testing.TB, name string) string {
	tb.Helper()
	b, err := ymls.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatalf("imagetest: no testdata yml %q (have fixture.yml, minimal.yml)", name)
	}
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

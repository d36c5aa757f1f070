// Package imagetest gives tests the fixture images of images/fixture
// (small OCI images synthesized from Debian packages, so a whole
// linuxkit.yml builds and boots offline) and the yml files that use them:
//
//	s, _ := store.Open(t.TempDir())
//	fx := imagetest.Populate(t, s)
//	cfg, _ := yml.Load(imagetest.YML(t, "fixture.yml"))
//
// It imports "testing"; code that is not a test uses images/fixture.
package imagetest

import (
	"embed"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/swarmboot/swarmboot/images/fixture"
	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/pkg/debfix"
)

// Marker, the image references and Fixture are images/fixture's.
const (
	Marker     = fixture.Marker
	KernelRef  = fixture.KernelRef
	InitRef    = fixture.InitRef
	OnbootRef  = fixture.OnbootRef
	ServiceRef = fixture.ServiceRef
)

// Fixture names the images Populate stored.
type Fixture = fixture.Fixture

//go:embed testdata/*.yml
var ymls embed.FS

// Populate stores the fixture images in s (building them the first time on
// this machine) and returns their references. It skips the test when
// apt-get or dpkg-deb is missing and fails it on any other error.
func Populate(tb testing.TB, s *store.Store) Fixture {
	tb.Helper()
	fx, err := fixture.Build(tb.Context(), s)
	if err != nil {
		if errors.Is(err, debfix.ErrNoApt) || errors.Is(err, exec.ErrNotFound) {
			tb.Skipf("imagetest: fixture images come from Debian packages: %v (install apt-get/dpkg, run `make deps`)", err)
		}
		tb.Fatalf("imagetest: %v", err)
	}
	return fx
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

package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/swarmboot/swarmboot/images/imagetest"
	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

// fixtureYML writes a yml of the fixture images with a command line the
// boots look for.
func fixtureYML(t *testing.T, fx imagetest.Fixture) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fixture.yml")
	y := "kernel:\n  image: " + fx.Kernel + "\n  cmdline: \"console=ttyS0 panic=-1 swarmboot.buildtest=yes\"\n" +
		"init:\n  - " + fx.Init + "\nonboot:\n  - name: hello\n    image: " + fx.Onboot + "\n" +
		"services:\n  - name: sleeper\n    image: " + fx.Service + "\n" +
		"files:\n  - path: etc/swarmboot/fixture\n    contents: \"built by the build test\\n\"\n"
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func buildFixture(t *testing.T, s *store.Store, ymlPath, out string, formats ...string) *Manifest {
	t.Helper()
	cfg, err := yml.Load(ymlPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckImages(t.Context(), cfg, s, store.DefaultPlatform, false); err != nil {
		t.Fatal(err)
	}
	m, err := Build(t.Context(), FromYML(cfg, s, store.DefaultPlatform), Options{Name: "fx", OutDir: out, Epoch: time.Unix(1700000000, 0), Formats: formats})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFixtureDeterministic builds the fixture yml twice: every artifact and
// the manifest are byte-identical, and the manifest names the images with
// their digests.
func TestFixtureDeterministic(t *testing.T) {
	t.Parallel()
	needISO(t)
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fx := imagetest.Populate(t, s)
	y := fixtureYML(t, fx)
	a, b := t.TempDir(), t.TempDir()
	m := buildFixture(t, s, y, a)
	buildFixture(t, s, y, b)
	for _, f := range []string{"fx-kernel", "fx-initrd.img", "fx-cmdline", "fx.iso", "fx.manifest.json"} {
		x, err := os.ReadFile(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		y, _ := os.ReadFile(filepath.Join(b, f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds", f)
		}
	}
	// The version: the same in both builds, in NAME.version and inside
	// the image; an image with a new digest (same files) makes a new one.
	v, err := ReadVersion(a, "fx")
	if err != nil || v != m.Version {
		t.Fatalf("ReadVersion = %q, %v; manifest %q", v, err, m.Version)
	}
	entries := initrdEntries(t, filepath.Join(a, "fx-initrd.img"))
	if last := entries[len(entries)-1]; last.name != "etc/swarmboot/image-version" || last.data != v+"\n" {
		t.Errorf("initrd ends with %q = %q, want the version file with %q", last.name, last.data, v)
	}
	img, err := s.Image(fx.Onboot, store.DefaultPlatform)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: time.Unix(1800000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	const newRef = "swarmboot/fixture-onboot:rebuilt"
	if err := s.Write(newRef, img); err != nil {
		t.Fatal(err)
	}
	y2 := filepath.Join(t.TempDir(), "fixture.yml")
	yml2, _ := os.ReadFile(y)
	if err := os.WriteFile(y2, bytes.Replace(yml2, []byte(fx.Onboot), []byte(newRef), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if m2 := buildFixture(t, s, y2, t.TempDir(), FormatKernelInitrd); m2.Version == m.Version {
		t.Errorf("onboot image with a new digest: version %s unchanged", m2.Version)
	}
	if len(m.Images) != 4 {
		t.Errorf("manifest images %+v, want the 4 fixture images", m.Images)
	}
	for _, im := range m.Images {
		if !strings.HasPrefix(im.Digest, "sha256:") {
			t.Errorf("image %s: digest %q", im.Ref, im.Digest)
		}
	}
}

// TestBoot builds the fixture yml and boots it three ways under QEMU/TCG:
// kernel+initrd directly, the ISO under SeaBIOS, the ISO under OVMF. Each
// must reach the fixture init's marker with the yml command line.
func TestBoot(t *testing.T) {
	if err := qemu.Check(); err != nil {
		t.Skip(err)
	}
	needISO(t)
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fx := imagetest.Populate(t, s)
	out := t.TempDir()
	buildFixture(t, s, fixtureYML(t, fx), out)
	cmdline, err := os.ReadFile(filepath.Join(out, "fx-cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	marker := regexp.MustCompile(regexp.QuoteMeta(imagetest.Marker) + ` cmdline=.*swarmboot\.buildtest=yes`)
	for _, c := range []struct {
		name string
		cfg  qemu.Config
	}{
		{"kernel+initrd", qemu.Config{Kernel: filepath.Join(out, "fx-kernel"), Initrd: filepath.Join(out, "fx-initrd.img"),
			Append: strings.TrimSpace(string(cmdline))}},
		{"iso-seabios", qemu.Config{Firmware: "bios", ISO: filepath.Join(out, "fx.iso"), Boot: "d"}},
		{"iso-ovmf", qemu.Config{Firmware: "uefi", ISO: filepath.Join(out, "fx.iso"), Boot: "d"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.LogFile = filepath.Join(out, strings.ReplaceAll(c.name, "+", "-")+".log")
			// Start may wait for a machine-wide VM slot; the boot itself gets 3 minutes.
			vm, err := qemu.Start(t.Context(), c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Stop()
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			line, err := vm.WaitFor(ctx, marker)
			if err != nil {
				out := vm.Output()
				if len(out) > 4000 {
					out = out[len(out)-4000:]
				}
				t.Fatalf("%v\nserial (tail):\n%s", err, out)
			}
			t.Log(line)
		})
	}
}

package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/swarmboot/swarmboot/images/build/imageversion"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/cpio"
)

// unpack extracts a newc archive into root the way the kernel unpacks
// each archive of its initramfs over the previous ones (init/initramfs.c):
// a directory that exists is kept with its contents (only its mode is
// set), a file or symlink replaces whatever was at its name.
func unpack(t *testing.T, root string, archive []byte) []string {
	t.Helper()
	var names []string
	r := cpio.NewReader(bytes.NewReader(archive))
	for {
		h, err := r.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		p := filepath.Join(root, h.Name)
		if h.Mode.IsDir() {
			if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, h.Mode.Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// imageArchive is the part of a built image's initrd under /etc/swarmboot:
// the builder's appliance.json (its "image" the build name), ca.pem, a
// file of the yml's own and the version file.
func imageArchive(t *testing.T, version string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	for _, e := range []struct{ name, data string }{
		{"etc", ""}, {"etc/swarmboot", ""},
		{"etc/swarmboot/appliance.json", `{"url":"https://build.example:8443","image":"worker"}`},
		{"etc/swarmboot/ca.pem", "old CA"},
		{"etc/swarmboot/site-note", "the yml's own file\n"},
		{"etc/swarmboot/image-version", version + "\n"},
	} {
		h := &cpio.Header{Name: e.name, Mode: fs.ModeDir | 0o755}
		if e.data != "" {
			h.Mode, h.Size = 0o644, int64(len(e.data))
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// trustInitrd is a listening daemon (not running) with --trust-initrd,
// and the trust initrd it wrote to its artifacts.
func trustInitrd(t *testing.T) (*Daemon, []byte) {
	t.Helper()
	d := offline(t, Config{TrustInitrd: true, APIListener: listenLoopback(t)})
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	trust, err := os.ReadFile(filepath.Join(d.cfg.Artifacts, TrustInitrdName))
	if err != nil {
		t.Fatal(err)
	}
	return d, trust
}

// TestTrustInitrd unpacks the trust initrd alone as the kernel would and
// loads it as the agent does.
func TestTrustInitrd(t *testing.T) {
	t.Parallel()
	d, trust := trustInitrd(t)
	root := t.TempDir()
	unpack(t, root, trust)
	cfg, pool, err := api.LoadTrust(filepath.Join(root, api.TrustDir))
	if err != nil {
		t.Fatalf("agent cannot load the trust initrd: %v", err)
	}
	if cfg.URL != d.APIURL() || pool == nil {
		t.Errorf("trust initrd URL %q, want %q", cfg.URL, d.APIURL())
	}
}

// TestTrustInitrdKeepsVersion: the trust initrd, unpacked over a built
// image, replaces the trust material (URL, CA) but leaves the image's
// version file and other files under /etc/swarmboot alone, so a netbooted
// agent reports the version the builder baked in.
func TestTrustInitrdKeepsVersion(t *testing.T) {
	t.Parallel()
	d, trust := trustInitrd(t)
	const version = "worker@3f2a9c1d0b7e"
	root := t.TempDir()
	unpack(t, root, imageArchive(t, version))
	names := unpack(t, root, trust) // the kernel's order: image first, trust last

	for _, n := range names {
		if filepath.Base(n) == imageversion.FileName {
			t.Errorf("the trust initrd writes %s", n)
		}
	}
	dir := filepath.Join(root, api.TrustDir)
	cfg, pool, err := api.LoadTrust(dir)
	if err != nil || pool == nil {
		t.Fatalf("agent cannot load the trust after the unpack: %v", err)
	}
	if cfg.URL != d.APIURL() {
		t.Errorf("appliance.json url %q, want the appliance's %q", cfg.URL, d.APIURL())
	}
	if got, err := os.ReadFile(filepath.Join(dir, imageversion.FileName)); err != nil || string(got) != version+"\n" {
		t.Errorf("image-version after the trust initrd: %q, %v; want %q", got, err, version)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "site-note")); string(got) != "the yml's own file\n" {
		t.Errorf("the yml's own file under %s changed: %q", api.TrustDir, got)
	}
	// What the agent reports (its --image-version default).
	if v, err := imageversion.Resolve(dir, cfg.Image); v != version || err != nil {
		t.Errorf("the agent would report %q (%v), want %q", v, err, version)
	}
	// appliance.json's image is not what carries the version: the trust
	// initrd's copy has none (one trust initrd serves every image).
	raw, _ := os.ReadFile(filepath.Join(dir, api.TrustConfigFile))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m["image"] != nil {
		t.Errorf("trust appliance.json %s (%v): want no image", raw, err)
	}
}

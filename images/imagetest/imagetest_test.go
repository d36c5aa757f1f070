package imagetest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/swarmboot/swarmboot/images/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// files reads the flattened filesystem of img: name → header and content.
func files(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(cleanRel(h.Name), "/")
		hdrs[name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			data[name] = b
		}
	}
	return hdrs, data
}

func TestPopulate(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	fx := Populate(t, s)
	if fx.Kernel != KernelRef || fx.Init != InitRef || fx.Onboot != OnbootRef || fx.Service != ServiceRef || fx.KernelVersion == "" {
		t.Fatalf("fixture %+v", fx)
	}
	ents, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 4 {
		t.Fatalf("store holds %+v", ents)
	}
	for _, e := range ents {
		if e.Platform != "linux/amd64" || !strings.HasPrefix(e.Ref, "docker.io/swarmboot/fixture-") {
			t.Errorf("entry %+v", e)
		}
	}

	t.Run("kernel", func(t *testing.T) {
		img, err := s.Image(fx.Kernel, "")
		if err != nil {
			t.Fatal(err)
		}
		hdrs, data := files(t, img)
		k := data["kernel"]
		// A bzImage carries "HdrS" at offset 0x202.
		if len(k) < 1<<20 || string(k[0x202:0x206]) != "HdrS" {
			t.Fatalf("/kernel is not a bzImage (%d bytes)", len(k))
		}
		if hdrs["kernel.tar"] == nil {
			t.Fatal("no /kernel.tar")
		}
		mods := map[string]bool{}
		tr := tar.NewReader(bytes.NewReader(data["kernel.tar"]))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			mods[h.Name] = true
		}
		prefix := "lib/modules/" + fx.KernelVersion + "/"
		for _, want := range []string{"kernel/drivers/net/virtio_net.ko", "kernel/drivers/net/net_failover.ko", "kernel/fs/overlayfs/overlay.ko", "kernel/drivers/net/vxlan/vxlan.ko", "modules.builtin"} {
			if !mods[prefix+want] {
				t.Errorf("kernel.tar lacks %s", prefix+want)
			}
		}
		if depmodInstalled() && !mods[prefix+"modules.dep"] {
			t.Error("depmod is installed but kernel.tar has no modules.dep")
		}
		if len(data["kernel.tar"]) > 64<<20 {
			t.Errorf("kernel.tar is %d MiB: the module selection is not applied", len(data["kernel.tar"])>>20)
		}
	})

	t.Run("init", func(t *testing.T) {
		img, err := s.Image(fx.Init, "")
		if err != nil {
			t.Fatal(err)
		}
		hdrs, data := files(t, img)
		if h := hdrs["init"]; h == nil || h.Mode&0o111 == 0 || !bytes.Contains(data["init"], []byte(Marker+" cmdline=")) {
			t.Fatalf("/init missing, not executable or without the marker: %+v", h)
		}
		if h := hdrs["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
			t.Fatalf("bin/sh: %+v", h)
		}
		if h := hdrs["sbin/poweroff"]; h == nil {
			t.Fatal("no poweroff applet")
		}
		if h := hdrs["dev/console"]; h == nil || h.Typeflag != tar.TypeChar || h.Devmajor != 5 || h.Devminor != 1 {
			t.Fatalf("dev/console: %+v", h)
		}
		if len(data["bin/busybox"]) < 1<<20 {
			t.Fatal("bin/busybox missing")
		}
	})

	for name, ref := range map[string]string{"onboot": fx.Onboot, "service": fx.Service} {
		t.Run(name, func(t *testing.T) {
			img, err := s.Image(ref, "")
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			var label map[string]any
			if err := json.Unmarshal([]byte(cf.Config.Labels["org.mobyproject.config"]), &label); err != nil {
				t.Fatalf("org.mobyproject.config label: %v", err)
			}
			if label["net"] != "host" || len(cf.Config.Cmd) == 0 || cf.Config.Cmd[0] != "/bin/sh" {
				t.Fatalf("config %+v label %v", cf.Config, label)
			}
			hdrs, _ := files(t, img)
			if hdrs["bin/busybox"] == nil || hdrs["init"] != nil {
				t.Fatal("want busybox and no /init")
			}
		})
	}

	// A second store gets the same (cached, deterministic) images.
	s2 := openStore(t)
	Populate(t, s2)
	ents2, err := s2.List()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ents {
		if ents[i].Digest != ents2[i].Digest {
			t.Errorf("%s: digest %s then %s", ents[i].Ref, ents[i].Digest, ents2[i].Digest)
		}
	}
}

func TestYML(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"fixture.yml", "minimal.yml"} {
		p := YML(t, name)
		b, err := readFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{KernelRef, InitRef} {
			if !strings.Contains(string(b), "image: "+ref) && !strings.Contains(string(b), "- "+ref) {
				t.Errorf("%s does not name %s", name, ref)
			}
		}
	}
	b, _ := readFile(YML(t, "fixture.yml"))
	for _, ref := range []string{OnbootRef, ServiceRef} {
		if !strings.Contains(string(b), ref) {
			t.Errorf("fixture.yml does not name %s", ref)
		}
	}
}

func readFile(p string) ([]byte, error) { return os.ReadFile(p) }

// depmodInstalled says whether the fixture kernel image could run depmod
// (PATH, or /usr/sbin and /sbin, which a non-root PATH may lack).
func depmodInstalled() bool {
	if _, err := exec.LookPath("depmod"); err == nil {
		return true
	}
	for _, p := range []string{"/usr/sbin/depmod", "/sbin/depmod"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// cleanRel is a tar entry name without a leading "/" or "./".
func cleanRel(name string) string {
	return strings.TrimPrefix(strings.TrimPrefix(name, "./"), "/")
}

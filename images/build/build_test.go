package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/images/iso"
)

// testTree writes a small root filesystem and a fake kernel.
func testTree(t testing.TB) DirSource {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for name, data := range map[string]string{
		"bin/sh": "#!fake", "etc/hostname": "node\n", "usr/lib/big": strings.Repeat("data ", 100000),
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/bin/sh", filepath.Join(root, "init")); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, bytes.Repeat([]byte{0x4d, 0x5a}, 300000), 0o644); err != nil {
		t.Fatal(err)
	}
	return DirSource{Dir: root, Kernel: kernel, Cmdline: "console=ttyS0 swarmboot.test=1"}
}

func needISO(t testing.TB) {
	if err := (iso.Options{}).CheckAssets(); err != nil {
		t.Skip(err)
	}
}

func readManifest(t *testing.T, path string) *Manifest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestBuildAllFormats(t *testing.T) {
	t.Parallel()
	needISO(t)
	src := testTree(t)
	out := filepath.Join(t.TempDir(), "out")
	var progress bytes.Buffer
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	_, err := Build(context.Background(), src, Options{Name: "node", OutDir: out, Progress: &progress,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(out)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o644 || time.Since(fi.ModTime()) > time.Hour {
			t.Errorf("%s: mode %v, mtime %v; want 0644 and now (%v)", e.Name(), fi.Mode(), fi.ModTime(), err)
		}
	}
	want := []string{"node-cmdline", "node-initrd.img", "node-kernel", "node.iso", "node.manifest.json", "node.version"}
	if !slices.Equal(names, want) {
		t.Errorf("output directory holds %v, want %v (no temporary files)", names, want)
	}
	m := readManifest(t, filepath.Join(out, "node.manifest.json"))
	if !m.BuildTime.Equal(now) || m.Cmdline != src.Cmdline || len(m.Artifacts) != 4 || m.SwarmbootVersion == "" {
		t.Errorf("manifest: %+v", m)
	}
	for _, a := range m.Artifacts {
		data, err := os.ReadFile(filepath.Join(out, a.File))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != a.SHA256 || int64(len(data)) != a.Size {
			t.Errorf("%s: manifest says %s/%d, file is %x/%d", a.File, a.SHA256, a.Size, sum, len(data))
		}
	}
	if cmd, _ := os.ReadFile(filepath.Join(out, "node-cmdline")); string(cmd) != src.Cmdline+"\n" {
		t.Errorf("cmdline file: %q", cmd)
	}
	if !strings.Contains(progress.String(), "initrd: ") || strings.Contains(progress.String(), "\r") {
		t.Errorf("plain progress (not a terminal) wrong:\n%q", progress.String())
	}
}

// TestDeterministic builds twice (different directories, different
// clocks) with SOURCE_DATE_EPOCH set: every file, the manifest included,
// is byte-identical.
func TestDeterministic(t *testing.T) {
	needISO(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	src := testTree(t)
	var outs []string
	for i := range 2 {
		out := filepath.Join(t.TempDir(), "out")
		clock := time.Now().Add(time.Duration(i) * time.Hour)
		if _, err := Build(context.Background(), src, Options{Name: "n", OutDir: out, Now: func() time.Time { return clock }}); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
		time.Sleep(1100 * time.Millisecond) // a wall-clock second passes between builds
	}
	for _, f := range []string{"n-kernel", "n-initrd.img", "n-cmdline", "n.iso", "n.manifest.json", "n.version"} {
		a, err := os.ReadFile(filepath.Join(outs[0], f))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(outs[1], f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of the same inputs", f)
		}
	}
	m := readManifest(t, filepath.Join(outs[0], "n.manifest.json"))
	if m.BuildTime.Unix() != 1700000000 {
		t.Errorf("build time %v, want SOURCE_DATE_EPOCH", m.BuildTime)
	}
}

func TestISOOnly(t *testing.T) {
	t.Parallel()
	needISO(t)
	out := t.TempDir()
	if _, err := Build(context.Background(), testTree(t), Options{Name: "x", OutDir: out, Formats: []string{"iso"}}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 3 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("want x.iso, x.manifest.json and x.version only, got %v", names)
	}
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for _, opt := range []Options{
		{Name: "", OutDir: "o"},
		{Name: "../x", OutDir: "o"},
		{Name: "x", OutDir: ""},
		{Name: "x", OutDir: "o", Formats: []string{"qcow2"}},
		{Name: "x@1", OutDir: "o"},
		{Name: "two words", OutDir: "o"},
	} {
		if _, err := Build(context.Background(), DirSource{}, opt); err == nil {
			t.Errorf("%+v accepted", opt)
		}
	}
}

func TestProgressTerminal(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newProgress(&buf, true)
	p.live("working %d", 1)
	p.step("done")
	if got := buf.String(); got != "\r\033[Kworking 1\r\033[Kdone\n" {
		t.Errorf("terminal progress %q", got)
	}
}

func TestMissingBootAsset(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	_, err := Build(context.Background(), fakeSource{}, Options{Name: "a", OutDir: out,
		ISO: iso.Options{SystemdBoot: "/nonexistent/systemd-bootx64.efi"}})
	if !errors.Is(err, iso.ErrAsset) || !strings.Contains(err.Error(), "apt-get install systemd-boot-efi") {
		t.Errorf("err = %v, want ErrAsset naming the package", err)
	}
}

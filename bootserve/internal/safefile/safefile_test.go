package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TraversalCorpus holds names that must never open a file outside the
// root. The TFTP and HTTP tests use the same list through their own
// protocols.
var traversalCorpus = []string{
	"../secret", "../../../../etc/passwd", "/etc/passwd", "//etc/passwd",
	"a/../../secret", `..\secret`, `a\..\..\secret`, "./../secret",
	"escape/secret", "escape", "abs", "sub/../../secret", "..",
	"ok\x00../secret", "fifo", "sub", ".", "", strings.Repeat("a/", 200) + "x",
	"a\nb", "dev-null",
}

func setup(t *testing.T) (*Dir, string) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	must(t, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(base, "secret"), []byte("SECRET"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "ok"), []byte("fine"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "sub", "in"), []byte("inside"), 0o644))
	must(t, os.Symlink("../secret", filepath.Join(root, "escape")))
	must(t, os.Symlink(filepath.Join(base, "secret"), filepath.Join(root, "abs")))
	must(t, os.Symlink("sub/in", filepath.Join(root, "link-in")))
	must(t, os.Symlink("/dev/null", filepath.Join(root, "dev-null")))
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	d, err := Open(root)
	must(t, err)
	t.Cleanup(func() { d.Close() })
	return d, root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesTraversal(t *testing.T) {
	t.Parallel()
	d, _ := setup(t)
	for _, name := range traversalCorpus {
		f, _, err := d.Open(name)
		if err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded, want refusal", name)
			continue
		}
		if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrRefused or ErrNotFound", name, err)
		}
		if strings.Contains(err.Error(), "/tmp") || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Open(%q) error leaks a path: %v", name, err)
		}
	}
}

func TestOpenAllowed(t *testing.T) {
	t.Parallel()
	d, _ := setup(t)
	for name, want := range map[string]string{"ok": "fine", "sub/in": "inside", `sub\in`: "inside", "link-in": "inside", "sub/./in": ""} {
		f, fi, err := d.Open(name)
		if want == "" {
			if err == nil {
				f.Close()
				t.Errorf("Open(%q) accepted an unclean name", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%q): %v", name, err)
			continue
		}
		b := make([]byte, 64)
		n, _ := f.Read(b)
		f.Close()
		if string(b[:n]) != want || fi.Size() != int64(len(want)) {
			t.Errorf("Open(%q) read %q size %d, want %q", name, b[:n], fi.Size(), want)
		}
	}
	if _, _, err := d.Open("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(missing) = %v, want ErrNotFound", err)
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range traversalCorpus {
		f.Add(s)
	}
	f.Add("undionly.kpxe")
	f.Fuzz(func(t *testing.T, name string) {
		n, err := Check(name)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("Check(%q) error %v is not ErrRefused", name, err)
			}
			return
		}
		if !filepath.IsLocal(n) || strings.Contains(n, "\x00") || len(n) > MaxName {
			t.Fatalf("Check(%q) = %q: not a local name", name, n)
		}
		for _, p := range strings.Split(n, "/") {
			if p == ".." || p == "" {
				t.Fatalf("Check(%q) = %q has component %q", name, n, p)
			}
		}
	})
}

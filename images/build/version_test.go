package build

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/images/build/imageversion"
	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/pkg/cpio"
)

// entrySource streams the given files (name → content) in order and
// returns a fixed kernel, command line and image list.
type entrySource struct {
	files   []string // name, content, name, content, ...
	mode    os.FileMode
	kernel  string
	cmdline string
	images  []ImageRef
}

func (e entrySource) Assemble(ctx context.Context, w rootfs.Writer) (*Rootfs, error) {
	for i := 0; i+1 < len(e.files); i += 2 {
		h := &rootfs.Header{Name: e.files[i], Mode: 0o644 | e.mode, Size: int64(len(e.files[i+1]))}
		if err := w.WriteEntry(h, strings.NewReader(e.files[i+1])); err != nil {
			return nil, err
		}
	}
	return &Rootfs{Kernel: []byte(e.kernel), Cmdline: e.cmdline, Images: e.images}, nil
}

func buildVersion(t *testing.T, src Source, opt Options) (string, string) {
	t.Helper()
	if opt.Name == "" {
		opt.Name = "w"
	}
	opt.OutDir = t.TempDir()
	opt.Formats = []string{FormatKernelInitrd}
	m, err := Build(context.Background(), src, opt)
	if err != nil {
		t.Fatal(err)
	}
	return m.Version, opt.OutDir
}

// TestVersionRules: the same inputs give the same version (whatever the
// timestamps), and each input that changes the image changes it.
func TestVersionRules(t *testing.T) {
	t.Parallel()
	img := []ImageRef{{Ref: "docker.io/library/docker:28", Digest: "sha256:" + strings.Repeat("a", 64)}}
	base := entrySource{files: []string{"etc/os-release", "v1", "usr/bin/dockerd", "28.0"}, kernel: "k", cmdline: "console=ttyS0", images: img}
	v0, _ := buildVersion(t, base, Options{})
	if _, d, err := imageversion.Parse(v0); err != nil || !strings.HasPrefix(v0, "w@") || len(d) != imageversion.HexLen {
		t.Fatalf("version %q (%v), want w@<12 hex>", v0, err)
	}
	again, _ := buildVersion(t, base, Options{Epoch: time.Unix(1700000000, 0)})
	if again != v0 {
		t.Errorf("same inputs, another epoch: %s, first build %s", again, v0)
	}
	if named, _ := buildVersion(t, base, Options{Name: "other"}); named != "other@"+strings.TrimPrefix(v0, "w@") {
		t.Errorf("name other: %s, want the same digest as %s", named, v0)
	}
	change := func(f func(*entrySource)) entrySource {
		s := base
		s.files = append([]string(nil), base.files...)
		s.images = append([]ImageRef(nil), base.images...)
		f(&s)
		return s
	}
	seen := map[string]string{v0: "base"}
	for name, src := range map[string]entrySource{
		"file bytes":    change(func(s *entrySource) { s.files[3] = "28.1" }),
		"file name":     change(func(s *entrySource) { s.files[2] = "usr/bin/dockerd2" }),
		"mode":          change(func(s *entrySource) { s.mode = os.ModeSetuid }),
		"one file more": change(func(s *entrySource) { s.files = append(s.files, "etc/motd", "") }),
		"image digest":  change(func(s *entrySource) { s.images[0].Digest = "sha256:" + strings.Repeat("b", 64) }),
		"image ref":     change(func(s *entrySource) { s.images[0].Ref = "docker.io/library/docker:29" }),
		"no images":     change(func(s *entrySource) { s.images = nil }),
		"kernel":        change(func(s *entrySource) { s.kernel = "k2" }),
		"cmdline":       change(func(s *entrySource) { s.cmdline = "console=ttyS1" }),
		// The boundary between two files moves, the bytes stay: framing counts.
		"boundary": change(func(s *entrySource) { s.files[1], s.files[3] = "v128", ".0" }),
	} {
		v, _ := buildVersion(t, src, Options{})
		if prev, dup := seen[v]; dup {
			t.Errorf("%s: version %s, the same as %s", name, v, prev)
		}
		seen[v] = name
	}
}

// TestVersionInImage: NAME.version, the manifest and the image's own
// /etc/swarmboot/image-version (the initrd's last entry) agree, and
// ReadVersion reads it back.
func TestVersionInImage(t *testing.T) {
	t.Parallel()
	v, out := buildVersion(t, entrySource{files: []string{"etc/hostname", "node\n"}, kernel: "k"}, Options{Name: "node"})
	got, err := ReadVersion(out, "node")
	if err != nil || got != v {
		t.Fatalf("ReadVersion = %q, %v; manifest says %q", got, err, v)
	}
	if m := readManifest(t, filepath.Join(out, "node.manifest.json")); m.Version != v {
		t.Errorf("manifest version %q, want %q", m.Version, v)
	}
	entries := initrdEntries(t, filepath.Join(out, "node-initrd.img"))
	last := entries[len(entries)-1]
	if last.name != "etc/swarmboot/image-version" || last.data != v+"\n" {
		t.Errorf("last initrd entry %q = %q, want etc/swarmboot/image-version = %q", last.name, last.data, v+"\n")
	}
	for _, e := range entries {
		if e.name == "etc/swarmboot" && !e.dir {
			t.Error("etc/swarmboot is not a directory")
		}
	}
}

type entry struct {
	name, data string
	dir        bool
}

// initrdEntries reads a gzip'd newc initrd.
func initrdEntries(t *testing.T, path string) []entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	r := cpio.NewReader(gz)
	for {
		h, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{name: h.Name, data: string(b), dir: h.Mode.IsDir()})
	}
}

// TestVersionFileRefused: the image may not bring its own version file.
func TestVersionFileRefused(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"etc/swarmboot/image-version", "/etc/swarmboot/./image-version"} {
		out := t.TempDir()
		_, err := Build(context.Background(), entrySource{files: []string{name, "w@000000000000\n"}, kernel: "k"},
			Options{Name: "w", OutDir: out, Formats: []string{FormatKernelInitrd}})
		if !errors.Is(err, ErrVersionFile) || !strings.Contains(err.Error(), "yml's files") {
			t.Errorf("%s: err = %v, want ErrVersionFile saying what to do", name, err)
		}
	}
}

func TestReadVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name+".version"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ok", "ok@0123456789ab\n")
	write("nonl", "nonl@0123456789ab")
	write("garbage", "\x00\x01binary\xff")
	write("long", "long@"+strings.Repeat("0", 1<<20))
	write("longname", strings.Repeat("x", imageversion.MaxNameLen+1)+"@0123456789ab\n")
	write("other", "worker@0123456789ab\n")
	write("upper", "upper@0123456789AB\n")
	write("twolines", "twolines@0123456789ab\ntwolines@0123456789ab\n")
	write("crlf", "crlf@0123456789ab\r\n")
	for _, c := range []struct{ name, want, err string }{
		{"ok", "ok@0123456789ab", ""},
		{"nonl", "nonl@0123456789ab", ""},
		{"missing", "", "run `swarmboot build"},
		{"garbage", "", "garbage.version"},
		{"long", "", "longer than"},
		{"longname", "", "longname.version"},
		{"other", "", `image "worker"`},
		{"upper", "", "hex"},
		{"twolines", "", "twolines.version"},
		{"crlf", "", "crlf.version"},
		{"../ok", "", "'/'"},
		{"", "", "empty image name"},
	} {
		got, err := ReadVersion(dir, c.name)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ReadVersion(%q) = %q, %v; want %q and an error containing %q", c.name, got, err, c.want, c.err)
		}
		if err != nil && c.name != "" && !strings.Contains(err.Error(), "swarmboot build") {
			t.Errorf("ReadVersion(%q): error does not say what to do: %v", c.name, err)
		}
	}
}

func FuzzReadVersion(f *testing.F) {
	f.Add([]byte("w@0123456789ab\n"))
	f.Add([]byte("w@0123456789ab"))
	f.Add([]byte("w@0123456789ab\n\n"))
	f.Add([]byte("x@0123456789ab\n"))
	f.Add([]byte("w@@0123456789ab\n"))
	f.Add([]byte("w@0123456789a\xff\n"))
	dir := f.TempDir()
	p := filepath.Join(dir, "w.version")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := ReadVersion(dir, "w")
		if err != nil {
			if v != "" {
				t.Fatalf("error %v with a version %q", err, v)
			}
			return
		}
		if string(b) != v && string(b) != v+"\n" {
			t.Fatalf("read %q from %q", v, b)
		}
		if len(v) != len("w@")+imageversion.HexLen || !strings.HasPrefix(v, "w@") {
			t.Fatalf("accepted %q", v)
		}
		for _, c := range v[2:] {
			if !strings.ContainsRune("0123456789abcdef", c) {
				t.Fatalf("accepted %q", v)
			}
		}
	})
}

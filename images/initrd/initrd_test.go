package initrd

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/pkg/cpio"
)

type ent struct {
	h    rootfs.Header
	data string
}

var stream = []ent{
	{h: rootfs.Header{Name: "bin", Mode: fs.ModeDir | 0o755}},
	{h: rootfs.Header{Name: "bin/busybox", Mode: 0o755, Size: 4}, data: "\x7fELF"},
	{h: rootfs.Header{Name: "bin/sh", Linkname: "bin/busybox"}},                                  // hard link
	{h: rootfs.Header{Name: "usr/sbin/deep", Mode: 0o700, Uid: 5, Gid: 6, Size: 3}, data: "abc"}, // parents missing
	{h: rootfs.Header{Name: "usr/sbin/ls", Linkname: "bin/busybox"}},                             // hard link across dirs
	{h: rootfs.Header{Name: "init", Mode: fs.ModeSymlink | 0o777, Linkname: "/bin/busybox"}},
	{h: rootfs.Header{Name: "dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Devmajor: 1, Devminor: 3}},
}

func build(t *testing.T, opt Options) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range stream {
		h := e.h
		h.ModTime = time.Now() // must not leak into the output
		if err := w.WriteEntry(&h, strings.NewReader(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestInitrd(t *testing.T) {
	t.Parallel()
	mtime := time.Unix(1700000000, 0)
	gz := build(t, Options{ModTime: mtime})
	if gz[3]&0x08 != 0 || !bytes.Equal(gz[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip header has a name or a time: % x", gz[:10])
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(zr)
	got := map[string]*cpio.Header{}
	var order []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, mtime)
		}
		got[h.Name] = h
		order = append(order, h.Name)
	}
	wantOrder := "bin bin/busybox bin/sh usr usr/sbin usr/sbin/deep usr/sbin/ls init dev dev/null"
	if strings.Join(order, " ") != wantOrder {
		t.Errorf("order %q, want %q", strings.Join(order, " "), wantOrder)
	}
	for name, link := range map[string]string{"bin/sh": "busybox", "usr/sbin/ls": "../../bin/busybox", "init": "/bin/busybox"} {
		if h := got[name]; h == nil || h.Mode.Type() != fs.ModeSymlink || h.Linkname != link {
			t.Errorf("%s: %+v, want symlink to %s", name, h, link)
		}
	}
	if h := got["usr"]; h == nil || !h.Mode.IsDir() || h.Mode.Perm() != 0o755 {
		t.Errorf("implied parent usr: %+v", h)
	}
	if h := got["dev/null"]; h == nil || h.Devmajor != 1 || h.Devminor != 3 {
		t.Errorf("dev/null: %+v", h)
	}
	if h := got["usr/sbin/deep"]; h == nil || h.Uid != 5 || h.Gid != 6 || h.Size != 3 {
		t.Errorf("usr/sbin/deep: %+v", h)
	}
}

// TestDeterministic: same entries, same bytes, whatever the concurrency.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	a := build(t, Options{Concurrency: 1})
	b := build(t, Options{Concurrency: 4})
	if !bytes.Equal(a, b) {
		t.Error("output depends on concurrency")
	}
}

func TestShortReader(t *testing.T) {
	t.Parallel()
	w, err := NewWriter(io.Discard, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = w.WriteEntry(&rootfs.Header{Name: "f", Size: 10}, strings.NewReader("abc"))
	if err == nil {
		t.Error("short reader accepted")
	}
}

// TestGNUCpio lists the archive with gzip -dc | cpio -t.
func TestGNUCpio(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed (apt-get install cpio)")
	}
	zr, err := gzip.NewReader(bytes.NewReader(build(t, Options{})))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = zr
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "usr/sbin/deep\n") || !strings.Contains(string(out), "dev/null\n") {
		t.Errorf("cpio -t:\n%s", out)
	}
}

func TestRelTo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ dir, target, want string }{
		{".", "bin/busybox", "bin/busybox"},
		{"bin", "bin/busybox", "busybox"},
		{"usr/bin", "bin/busybox", "../../bin/busybox"},
		{"a/b", "a/c/d", "../c/d"},
	} {
		if got := relTo(c.dir, c.target); got != c.want {
			t.Errorf("relTo(%q, %q) = %q, want %q", c.dir, c.target, got, c.want)
		}
	}
}

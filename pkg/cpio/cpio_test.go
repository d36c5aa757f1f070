package cpio

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var mtime = time.Unix(1700000000, 0)

type entry struct {
	h    Header
	data string
}

func sample() []entry {
	return []entry{
		{h: Header{Name: "bin", Mode: fs.ModeDir | 0o755}},
		{h: Header{Name: "/bin/hello", Mode: 0o755, Size: 5}, data: "hello"},
		{h: Header{Name: "./etc", Mode: fs.ModeDir | 0o755}},
		{h: Header{Name: "etc/odd", Mode: 0o640 | fs.ModeSetuid, Uid: 1000, Gid: 100, Size: 7}, data: "odd\x00len"},
		{h: Header{Name: "etc/empty", Mode: 0o600}},
		{h: Header{Name: "etc/link", Mode: fs.ModeSymlink | 0o777, Linkname: "../bin/hello"}},
		{h: Header{Name: "dev", Mode: fs.ModeDir | 0o755}},
		{h: Header{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1}},
		{h: Header{Name: "dev/sda", Mode: fs.ModeDevice | 0o660, Devmajor: 8}},
		{h: Header{Name: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777}},
	}
}

func write(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		h.ModTime = mtime
		if err := w.WriteHeader(&h); err != nil {
			t.Fatalf("WriteHeader %s: %v", h.Name, err)
		}
		if _, err := io.WriteString(w, e.data); err != nil && e.data != "" {
			t.Fatalf("Write %s: %v", h.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := write(t, sample())
	if len(b)%512 != 0 {
		t.Errorf("archive length %d is not a multiple of 512", len(b))
	}
	r := NewReader(bytes.NewReader(b))
	for i, e := range sample() {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		want := e.h
		want.Name = cleanName(want.Name)
		if h.Name != want.Name || h.Mode != want.Mode || h.Uid != want.Uid || h.Gid != want.Gid ||
			h.Linkname != want.Linkname || h.Devmajor != want.Devmajor || h.Devminor != want.Devminor ||
			!h.ModTime.Equal(mtime) {
			t.Errorf("entry %d: got %+v, want %+v", i, *h, want)
		}
		if h.Ino != uint32(i+1) {
			t.Errorf("entry %d: inode %d, want %d", i, h.Ino, i+1)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if h.Mode.IsRegular() && string(data) != e.data {
			t.Errorf("entry %s: data %q, want %q", h.Name, data, e.data)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after last entry: %v, want io.EOF", err)
	}
	if !bytes.Equal(b, write(t, sample())) {
		t.Error("same entries gave different bytes")
	}
}

func TestWriterErrors(t *testing.T) {
	t.Parallel()
	w := NewWriter(io.Discard)
	if err := w.WriteHeader(&Header{Name: "f", Mode: 0o644, Size: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("toolong")); !errors.Is(err, ErrWriteSize) {
		t.Errorf("overlong write: %v, want ErrWriteSize", err)
	}
	if _, err := w.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(&Header{Name: "g", Mode: 0o644}); !errors.Is(err, ErrShortData) {
		t.Errorf("header after short data: %v, want ErrShortData", err)
	}
	w = NewWriter(io.Discard)
	if err := w.WriteHeader(&Header{Name: Trailer, Mode: 0o644}); err == nil {
		t.Error("entry named TRAILER!!! accepted")
	}
	if err := w.WriteHeader(&Header{Name: "big", Mode: 0o644, Size: 1 << 32}); err == nil {
		t.Error("4 GiB file accepted")
	}
	if err := w.WriteHeader(&Header{Name: "p", Mode: fs.ModeIrregular}); err == nil {
		t.Error("irregular file type accepted")
	}
}

func TestReaderErrors(t *testing.T) {
	t.Parallel()
	good := write(t, sample())
	for name, b := range map[string][]byte{
		"bad magic":      append([]byte("070707"), good[6:]...),
		"truncated":      good[:200],
		"bad hex":        append([]byte("070701zzzzzzzz"), good[14:]...),
		"huge name size": []byte("070701" + strings.Repeat("00000000", 11) + "7FFFFFFF" + "00000000"),
	} {
		r := NewReader(bytes.NewReader(b))
		var err error
		for err == nil {
			_, err = r.Next()
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
		}
		if err == io.EOF {
			t.Errorf("%s: read to the end without an error", name)
		}
	}
}

// TestRealCpio reads our archive back with GNU cpio: the listing and an
// extraction (devices only when root).
func TestRealCpio(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed (apt-get install cpio)")
	}
	entries := sample()
	if os.Getuid() != 0 {
		var keep []entry
		for _, e := range entries {
			if e.h.Mode&fs.ModeDevice == 0 {
				keep = append(keep, e)
			}
		}
		entries = keep
	}
	b := write(t, entries)
	out, err := runCpio(t, "", b, "-t", "-v", "--quiet")
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	for _, want := range []string{"-rwxr-xr-x", "bin/hello", "etc/link -> ../bin/hello", "-rwSr-----"} {
		if !strings.Contains(out, want) {
			t.Errorf("cpio -t -v output lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	if out, err := runCpio(t, dir, b, "-i", "-d", "--quiet", "--no-absolute-filenames", "--preserve-modification-time"); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "etc/odd"))
	if err != nil || string(got) != "odd\x00len" {
		t.Errorf("extracted etc/odd = %q, %v", got, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "etc/link")); err != nil || target != "../bin/hello" {
		t.Errorf("extracted symlink = %q, %v", target, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "bin/hello"))
	if err != nil || fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(mtime) {
		t.Errorf("extracted bin/hello: %v %v", fi, err)
	}
	if os.Getuid() == 0 {
		fi, err := os.Lstat(filepath.Join(dir, "dev/console"))
		if err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
			t.Errorf("dev/console not a character device: %v %v", fi, err)
		}
	}
}

func runCpio(t *testing.T, dir string, in []byte, args ...string) (string, error) {
	cmd := exec.Command("cpio", args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestReadRealCpio reads an archive made by GNU cpio with our reader.
func TestReadRealCpio(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed (apt-get install cpio)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("alpha"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(dir, "l")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("a\nl\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(out))
	got := map[string]string{}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		got[h.Name] = string(data) + h.Linkname
	}
	if got["a"] != "alpha" || got["l"] != "a" || len(got) != 2 {
		t.Errorf("read %v", got)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(write(f, sample()))
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for i := 0; i < 1000; i++ {
			h, err := r.Next()
			if err != nil {
				return
			}
			if len(h.Name) > MaxNameSize {
				t.Fatalf("name of %d bytes", len(h.Name))
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	})
}

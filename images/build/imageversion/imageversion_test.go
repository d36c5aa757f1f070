package imageversion

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

func TestNewParse(t *testing.T) {
	t.Parallel()
	sum := []byte{0x3f, 0x2a, 0x9c, 0x1d, 0x0b, 0x7e, 0xff, 0xff}
	v, err := New("worker", sum)
	if err != nil || v != "worker@3f2a9c1d0b7e" {
		t.Fatalf("New = %q, %v", v, err)
	}
	if name, d, err := Parse(v); err != nil || name != "worker" || d != "3f2a9c1d0b7e" {
		t.Errorf("Parse(%q) = %q %q %v", v, name, d, err)
	}
	if _, err := New("worker", sum[:5]); err == nil {
		t.Error("New took a 5-byte digest")
	}
	for _, bad := range []string{"", "worker", "worker@", "@3f2a9c1d0b7e", "worker@3f2a9c1d0b7", "worker@3f2a9c1d0b7e0",
		"worker@3F2A9C1D0B7E", "wor ker@3f2a9c1d0b7e", "a/b@3f2a9c1d0b7e", "w\x00@3f2a9c1d0b7e", "w\u200b@3f2a9c1d0b7e",
		"w@3f2a9c1d0b7g", strings.Repeat("x", MaxNameLen+1) + "@3f2a9c1d0b7e", "\xff@3f2a9c1d0b7e"} {
		if _, _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := Parse("w@x@3f2a9c1d0b7e"); !errors.Is(err, ErrInvalid) {
		t.Errorf("a name with '@' accepted: %v", err)
	}
	if err := CheckName("lab-worker_1.2+x"); err != nil {
		t.Error(err)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if v, err := Resolve(dir, "worker"); v != "worker" || err != nil {
		t.Errorf("no file: %q %v, want the fallback", v, err)
	}
	p := filepath.Join(dir, FileName)
	os.WriteFile(p, Line("worker@3f2a9c1d0b7e"), 0o644)
	if v, err := Resolve(dir, "worker"); v != "worker@3f2a9c1d0b7e" || err != nil {
		t.Errorf("file: %q %v", v, err)
	}
	os.WriteFile(p, []byte("garbage\n"), 0o644)
	if v, err := Resolve(dir, "worker"); v != "worker" || err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("garbage: %q %v, want the fallback and an error naming %s", v, err, p)
	}
	if Path != filepath.Join(Dir, FileName) {
		t.Errorf("Path %q", Path)
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte("worker@3f2a9c1d0b7e\n"))
	f.Add([]byte("worker@3f2a9c1d0b7e"))
	f.Add([]byte("w@x@3f2a9c1d0b7e\n"))
	f.Add([]byte("\xe2\x80\x8b@3f2a9c1d0b7e"))
	f.Add([]byte("ü@3f2a9c1d0b7e\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseLine(b)
		if err != nil {
			return
		}
		if len(v) > MaxLen || (string(b) != v && string(b) != v+"\n") {
			t.Fatalf("accepted %q as %q", b, v)
		}
		for _, r := range v {
			if !unicode.IsPrint(r) || unicode.IsSpace(r) {
				t.Fatalf("accepted %q with %U", v, r)
			}
		}
		name, d, err := Parse(v)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := New(name, mustHex(t, d)); err != nil || again != v {
			t.Fatalf("round trip %q → %q %v", v, again, err)
		}
	})
}

func mustHex(t *testing.T, s string) []byte {
	var b []byte
	for i := 0; i+1 < len(s); i += 2 {
		var x byte
		for _, c := range s[i : i+2] {
			x = x<<4 | byte(strings.IndexRune("0123456789abcdef", c))
		}
		b = append(b, x)
	}
	if len(b) != HexLen/2 {
		t.Fatalf("digest %q", s)
	}
	return b
}

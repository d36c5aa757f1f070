package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildMissingImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	y := filepath.Join(dir, "w.yml")
	if err := os.WriteFile(y, []byte("kernel:\n  image: example.org/kernel:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/init:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--data-dir", filepath.Join(dir, "data"), "build", "-f", y, "-o", filepath.Join(dir, "out")},
		strings.NewReader(""), &out, &errb)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	for _, want := range []string{"example.org/kernel:1", "example.org/init:2", "swarmboot image import"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("output directory created although nothing was built")
	}
}

func TestBuildFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"build"}, {"build", "-f", "x.yml"}, {"build", "-f", "x.yml", "-o", "o", "--format", "vhd"}} {
		var out, errb bytes.Buffer
		dir := t.TempDir()
		if code := Main(context.Background(), append([]string{"--data-dir", dir}, args...), strings.NewReader(""), &out, &errb); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
		if errb.Len() == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
	var out, errb bytes.Buffer
	Main(context.Background(), []string{"build", "--help"}, strings.NewReader(""), &out, &errb)
	if !strings.Contains(out.String(), "swarmboot build -f linuxkit/worker.yml -o out/") {
		t.Errorf("help has no example:\n%s", out.String())
	}
}

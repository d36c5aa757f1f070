package cli

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// run runs the CLI with a fresh data dir per test and returns stdout,
// stderr and the exit code.
func run(t *testing.T, data string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), append([]string{"--data-dir", data}, args...), nil, &out, &errb)
	return out.String(), errb.String(), code
}

func savedImage(t *testing.T, tag string) (string, v1.Image) {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(p, ref, img); err != nil {
		t.Fatal(err)
	}
	return p, img
}

func TestImageImportLsRm(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	file, img := savedImage(t, "linuxkit/init:v1.2.0")
	id, _ := img.ConfigName()

	out, errOut, code := run(t, data, "image", "import", file)
	if code != 0 || !strings.Contains(out, "imported docker.io/linuxkit/init:v1.2.0 from "+file) {
		t.Fatalf("import: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(data, "images", "index.json")); err != nil {
		t.Fatalf("store not under <data-dir>/images: %v", err)
	}
	out, _, code = run(t, data, "image", "ls")
	if code != 0 || !strings.Contains(out, "REFERENCE") || !strings.Contains(out, "docker.io/linuxkit/init:v1.2.0") ||
		!strings.Contains(out, "IMAGE ID") || !strings.Contains(out, " "+id.Hex[:12]+" ") || !strings.Contains(out, "sha256:") || !strings.Contains(out, "KiB") {
		t.Fatalf("ls: exit %d\n%s", code, out)
	}
	out, _, _ = run(t, data, "image", "ls", "-q")
	if out != "docker.io/linuxkit/init:v1.2.0\n" {
		t.Fatalf("ls -q: %q", out)
	}
	out, errOut, code = run(t, data, "image", "rm", "linuxkit/init:v1.2.0")
	if code != 0 || out != "removed docker.io/linuxkit/init:v1.2.0\n" {
		t.Fatalf("rm: exit %d %q %q", code, out, errOut)
	}
	out, _, _ = run(t, data, "image", "ls", "-q")
	if out != "" {
		t.Fatalf("ls after rm: %q", out)
	}
	_, errOut, code = run(t, data, "image", "rm", "linuxkit/init:v1.2.0")
	if code != 1 || !strings.Contains(errOut, "swarmboot image import FILE") {
		t.Fatalf("rm of a missing image: exit %d, stderr %q", code, errOut)
	}
}

func TestImageImportStdin(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	file, _ := savedImage(t, "site/piped:v1")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--data-dir", data, "image", "import", "-"}, bytes.NewReader(b), &out, &errb)
	if code != 0 || out.String() != "imported docker.io/site/piped:v1 from -\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	code = Main(context.Background(), []string{"--data-dir", data, "image", "import", "-"}, strings.NewReader("garbage"), &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "import standard input: not a tar archive") {
		t.Fatalf("garbage on stdin: exit %d, stderr %q", code, errb.String())
	}
}

func TestImageImportErrors(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	bad := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(bad, []byte("these are not the images you are looking for, no tar here......."), 0o644)
	_, errOut, code := run(t, data, "image", "import", bad)
	if code != 1 || !strings.Contains(errOut, bad) || !strings.Contains(errOut, "docker save") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	file, _ := savedImage(t, "a/b:c")
	_, errOut, code = run(t, data, "image", "import", "--platform", "linux", file)
	if code != 1 || !strings.Contains(errOut, "os/arch") {
		t.Fatalf("bad --platform: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, data, "image", "import", "--ref", "x/y:z", file, file)
	if code != 1 || !strings.Contains(errOut, "--ref") {
		t.Fatalf("--ref with two files: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, data, "image", "import")
	if code != 1 || !strings.Contains(errOut, "arg") {
		t.Fatalf("no FILE: exit %d, stderr %q", code, errOut)
	}
}

func TestImageHelpTeachesAirGap(t *testing.T) {
	t.Parallel()
	out, _, code := run(t, t.TempDir(), "image", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"docker save", "swarmboot image import", "swarmboot image pull", "Air-gapped"} {
		if !strings.Contains(out, want) {
			t.Errorf("image --help lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = run(t, t.TempDir(), "image", "import", "--help")
	if !strings.Contains(out, "--platform") || !strings.Contains(out, "Examples:") {
		t.Errorf("import --help:\n%s", out)
	}
}

// TestImagePull pulls from an in-memory registry on loopback.
func TestImagePull(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(registry.Logger(nopLogger())))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/site/worker:v1"
	tag, _ := name.NewTag(ref)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	out, errOut, code := run(t, data, "image", "pull", ref)
	if code != 0 || out != "pulled "+ref+"\n" {
		t.Fatalf("pull: exit %d %q %q", code, out, errOut)
	}
	out, _, _ = run(t, data, "image", "ls", "-q")
	if out != ref+"\n" {
		t.Fatalf("ls -q after pull: %q", out)
	}
	_, errOut, code = run(t, data, "image", "pull", host+"/site/absent:v1")
	if code != 1 || !strings.Contains(errOut, "swarmboot image import") {
		t.Fatalf("pull of an absent image: exit %d %q", code, errOut)
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

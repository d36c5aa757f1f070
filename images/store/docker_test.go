package store

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestImportRealDockerSave imports what a real dockerd's `docker save`
// writes (Debian's docker.io): a private dockerd with no networking
// (--bridge=none, no iptables) is started, a tiny image is made offline
// with `docker import`, saved, and imported into the store.
// privateDockerd starts a dockerd of its own with no networking
// (--bridge=none, no iptables) and returns a function running the docker
// client against it. It skips when not root or dockerd is missing; the
// daemon is stopped (by PID) when tb ends.
func privateDockerd(tb testing.TB, ctx context.Context) func(stdin io.Reader, args ...string) (string, error) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to run a private dockerd")
	}
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		tb.Skip("dockerd not installed (Debian docker.io)")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		tb.Skip("docker client not installed")
	}
	// A short directory: the daemon's unix sockets must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "sbdock")
	if err != nil {
		tb.Fatal(err)
	}
	sock := "unix://" + filepath.Join(dir, "d.sock")
	dlog := &lockedBuffer{}
	d := exec.Command(dockerd, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "x"),
		"-H", sock, "--pidfile", filepath.Join(dir, "d.pid"), "--bridge=none", "--iptables=false", "--ip6tables=false",
		"--ip-masq=false", "--userland-proxy=false")
	d.Stdout, d.Stderr = dlog, dlog
	if err := d.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		d.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- d.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			d.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	})
	run := func(stdin io.Reader, args ...string) (string, error) {
		c := exec.CommandContext(ctx, docker, append([]string{"-H", sock}, args...)...)
		c.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(dir, "cfg"))
		c.Stdin = stdin
		out, err := c.CombinedOutput()
		return string(out), err
	}
	for {
		if _, err := run(nil, "version"); err == nil {
			return run
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("dockerd did not come up:\n%s", dlog.String())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestImportRealDockerSave imports what a real dockerd's `docker save`
// writes (Debian's docker.io): a tiny image is made offline with `docker
// import`, saved, and imported into the store.
func TestImportRealDockerSave(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	docker := privateDockerd(t, ctx)
	dir := t.TempDir()
	rootfs := tarBytes(t, entry{"hello.txt", "hello from docker\n"}, entry{"etc/os-release", "ID=fixture\n"})
	if out, err := docker(bytes.NewReader(rootfs), "import", "-c", "CMD [\"/hello\"]", "-", "sbtest/hello:v1"); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	saved := filepath.Join(dir, "saved.tar")
	if out, err := docker(nil, "save", "-o", saved, "sbtest/hello:v1"); err != nil {
		t.Fatalf("docker save: %v\n%s", err, out)
	}
	id, err := docker(nil, "image", "inspect", "-f", "{{.Id}}", "sbtest/hello:v1")
	if err != nil {
		t.Fatal(id, err)
	}

	s := openStore(t)
	refs, err := s.Import(ctx, saved, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0] != "docker.io/sbtest/hello:v1" {
		t.Fatalf("refs %q", refs)
	}
	img, err := s.Image("sbtest/hello:v1", "")
	if err != nil {
		t.Fatal(err)
	}
	cfgName, _ := img.ConfigName()
	if cfgName.String() != strings.TrimSpace(id) {
		t.Fatalf("config digest %s, docker's image id %s", cfgName, strings.TrimSpace(id))
	}
	cf, _ := img.ConfigFile()
	if len(cf.Config.Cmd) != 1 || cf.Config.Cmd[0] != "/hello" {
		t.Fatalf("config cmd %q", cf.Config.Cmd)
	}
	ls, _ := img.Layers()
	if len(ls) != 1 {
		t.Fatalf("%d layers", len(ls))
	}
}

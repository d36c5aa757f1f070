package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needApt(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not installed: the lab image is made from Debian packages")
	}
}

func TestDepNames(t *testing.T) {
	t.Parallel()
	got := strings.Join(depNames("libc6 (>= 2.34), libdevmapper1.02.1 (>= 2:1.02.97), adduser, foo | bar, libx:any"), " ")
	if want := "libc6 libdevmapper1.02.1 adduser foo libx"; got != want {
		t.Fatalf("depNames = %q, want %q", got, want)
	}
}

// TestClosureRuns stages runc and containerd, copies only the closure
// AddFromRoot computes into an empty root, and runs the binaries there with
// chroot: a missing library would make them fail.
func TestClosureRuns(t *testing.T) {
	needApt(t)
	if os.Geteuid() != 0 {
		t.Skip("not root: chroot needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stage := t.TempDir()
	if _, err := Stage(ctx, stage, "runc", "containerd"); err != nil {
		t.Fatal(err)
	}
	tr := NewTree()
	if err := tr.AddFromRoot(stage, "usr/sbin/runc", "usr/bin/containerd"); err != nil {
		t.Fatal(err)
	}
	if !tr.Has("lib64/ld-linux-x86-64.so.2") {
		t.Errorf("closure lacks the ELF interpreter: %v", tr.Names())
	}
	root := t.TempDir()
	tar := filepath.Join(t.TempDir(), "closure.tar")
	f, err := os.Create(tar)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.WriteTar(f, ""); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("tar", "-xf", tar, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v %s", err, out)
	}
	for _, c := range [][]string{{"/usr/sbin/runc", "--version"}, {"/usr/bin/containerd", "--version"}} {
		out, err := exec.Command("chroot", append([]string{root}, c...)...).CombinedOutput()
		if err != nil {
			t.Errorf("chroot %s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
}

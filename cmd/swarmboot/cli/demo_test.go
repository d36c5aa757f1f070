package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/qemu"
)

func TestDemoRejectsUnknownBoot(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--data-dir", t.TempDir(), "demo", "--boot", "floppy"}, nil, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), `--boot "floppy"`) || !strings.Contains(errb.String(), "iso-uefi") {
		t.Fatalf("exit %d, stderr %q: want a refusal naming the valid boots", code, errb.String())
	}
}

// TestDemoKernelBoot runs the demo's direct kernel boot for real: fixture
// images, the builder, QEMU.
func TestDemoKernelBoot(t *testing.T) {
	if err := qemu.Check(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not installed: the demo's images come from Debian packages")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := Main(ctx, []string{"--data-dir", dir, "--log-level", "warn", "demo", "--boot", "kernel"}, nil, &out, &errb); code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"ok: init saw cmdline", "swarmboot.demo=1", "summary"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{"demo-kernel", "demo-initrd.img", "demo.iso", "serial-kernel.log"} {
		if _, err := os.Stat(filepath.Join(dir, "demo", f)); err != nil {
			t.Errorf("demo left no %s: %v", f, err)
		}
	}
}

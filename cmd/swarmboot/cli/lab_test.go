package cli

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/lab"
)

// TestLabImages synthesizes the lab images into a fresh data directory and
// finds them with `image ls`.
func TestLabImages(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not installed: the lab images come from Debian packages")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := Main(ctx, []string{"--data-dir", dir, "--log-level", "warn", "lab", "images"}, nil, &out, &errb); code != 0 {
		t.Fatalf("lab images: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := Main(ctx, []string{"--data-dir", dir, "image", "ls"}, nil, &out, &errb); code != 0 {
		t.Fatalf("image ls: exit %d: %s", code, errb.String())
	}
	for _, ref := range []string{lab.KernelRef, lab.InitRef, lab.FormatRef, lab.DockerRef} {
		name, tag, _ := strings.Cut(ref, ":")
		if !strings.Contains(out.String(), name) || !strings.Contains(out.String(), tag) {
			t.Errorf("image ls lacks %s:\n%s", ref, out.String())
		}
	}
}

// TestLabUpDownHelp: up and down teach their use; down without a lab is
// not an error and says so.
func TestLabUpDownHelp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct{ cmd, want string }{{"up", "--reboot-workers"}, {"up", "--exit"}, {"down", "lab-state.json"}} {
		var out, errb bytes.Buffer
		if code := Main(ctx, []string{"lab", c.cmd, "--help"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), c.want) || !strings.Contains(out.String(), "Example") {
			t.Errorf("lab %s --help: exit %d, lacks %q or an example:\n%s%s", c.cmd, code, c.want, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := Main(ctx, []string{"--data-dir", t.TempDir(), "lab", "down"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "lab removed") {
		t.Errorf("lab down without a lab: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// TestLabUpNeedsAgent names the missing agent binary and how to build it.
func TestLabUpNeedsAgent(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--data-dir", t.TempDir(), "lab", "up", "--agent", "/nonexistent/swarmboot-agent"}, nil, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "make build") {
		t.Errorf("lab up without an agent: exit %d, want an error naming `make build`:\n%s", code, errb.String())
	}
}

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

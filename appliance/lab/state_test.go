package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/swarmboot/swarmboot/pkg/netns"
)

// TestDownStale removes a crashed lab from its state file: the namespace
// goes, the files go, and a recorded PID that now runs some other program
// (a recycled PID) is left alone.
func TestDownStale(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skip(err)
	}
	ns, err := netns.New(context.Background(), NSPrefix)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ns.AddBridge("br0", "10.77.62.1/24"); err != nil {
		t.Fatal(err)
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	dir := filepath.Join(t.TempDir(), "lab")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeState(dir, State{PIDs: []int{other.Process.Pid}, NetNS: ns.Name(), Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if err := Down(dir); err != nil {
		t.Fatal(err)
	}
	if names, _ := netns.List(NSPrefix); slices.Contains(names, ns.Name()) {
		t.Errorf("namespace %s still there", ns.Name())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir still there: %v", err)
	}
	if !alive(other.Process.Pid) {
		t.Errorf("Down signalled PID %d, which runs sleep, not a lab process", other.Process.Pid)
	}
	if err := Down(dir); err != nil {
		t.Errorf("Down without a lab: %v", err)
	}
}

// TestUpRefusesBadOptions names what is missing.
func TestUpRefusesBadOptions(t *testing.T) {
	t.Parallel()
	if _, err := Up(context.Background(), Options{}); err == nil {
		t.Error("Up without Dir succeeded")
	}
	if _, err := Up(context.Background(), Options{Dir: t.TempDir()}); err == nil {
		t.Error("Up without images, yml and agent succeeded")
	}
}

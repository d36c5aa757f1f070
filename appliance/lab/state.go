package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmboot/swarmboot/pkg/netns"
)

// State is what a running lab made, written to StateFile under its
// directory so that `lab down` (or the next `lab up`) removes exactly that.
type State struct {
	PIDs  []int  `json:"pids"`  // the lab up process and its QEMU VMs
	NetNS string `json:"netns"` // the namespace holding the bridge and taps
	Dir   string `json:"dir"`   // the lab's files
}

// StateFile is the state file's name inside the lab directory.
const StateFile = "lab-state.json"

func writeState(dir string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, StateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, StateFile))
}

// Down removes the lab whose state is in dir: it stops the processes the
// state file recorded (SIGTERM, then SIGKILL after 5 s; a PID that now
// belongs to some other program is left alone), deletes the namespace
// (with its bridge and taps) and the lab's files. A missing state file is
// not an error: there is nothing to remove.
func Down(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("lab down: %s: %w (remove the file and the namespace by hand: ip netns list)", filepath.Join(dir, StateFile), err)
	}
	var errs []error
	self := os.Getpid()
	for _, pid := range st.PIDs {
		if pid <= 1 || pid == self || !ours(pid) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range st.PIDs {
		if pid <= 1 || pid == self {
			continue
		}
		for alive(pid) && ours(pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if alive(pid) && ours(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if st.NetNS != "" && strings.HasPrefix(st.NetNS, NSPrefix) {
		if ns, err := netns.Open(st.NetNS); err == nil {
			if err := ns.Close(); err != nil {
				errs = append(errs, fmt.Errorf("lab down: namespace %s: %w", st.NetNS, err))
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("lab down: %w", err))
	}
	return errors.Join(errs...)
}

// NSPrefix starts the name of every lab namespace.
const NSPrefix = "sblab"

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// ours reports whether pid still runs a program the lab starts (QEMU or a
// swarmboot binary), so a recycled PID is never signalled.
func ours(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	argv0 := strings.SplitN(string(b), "\x00", 2)[0]
	base := filepath.Base(argv0)
	return strings.Contains(base, "qemu") || strings.Contains(base, "swarmboot") || strings.HasSuffix(base, ".test") || base == "nsenter"
}

package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// SlotsEnv names the environment variable that sets how many VMs may run at
// once on this machine (default 1: TCG on two cores is slow enough alone).
const SlotsEnv = "SWARMBOOT_QEMU_SLOTS"

// slotDirOverride lets tests use their own slot files.
var slotDirOverride string

func slotDir() string {
	if slotDirOverride != "" {
		return slotDirOverride
	}
	if st, err := os.Stat("/run/lock"); err == nil && st.IsDir() && unix.Access("/run/lock", unix.W_OK) == nil {
		return "/run/lock"
	}
	return os.TempDir()
}

func slotCount() int {
	if n, err := strconv.Atoi(os.Getenv(SlotsEnv)); err == nil && n > 0 {
		return n
	}
	return 1
}

// AcquireSlot waits for one of the machine-wide VM slots (a flock'd file
// under /run/lock or /tmp) and returns the function that releases it. Start
// takes a slot itself; a caller that runs several VMs at once on purpose
// (the lab) takes one slot for all of them and starts them with NoSlot.
func AcquireSlot(ctx context.Context) (release func(), err error) {
	n := slotCount()
	files := make([]*os.File, n)
	for i := range files {
		name := filepath.Join(slotDir(), fmt.Sprintf("swarmboot-qemu.slot%d", i))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			for _, g := range files[:i] {
				g.Close()
			}
			return nil, fmt.Errorf("qemu: open VM slot %s: %w", name, err)
		}
		files[i] = f
	}
	closeExcept := func(keep int) {
		for i, f := range files {
			if i != keep {
				f.Close()
			}
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		for i, f := range files {
			if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
				closeExcept(i)
				return func() { f.Close() }, nil
			}
		}
		select {
		case <-ctx.Done():
			closeExcept(-1)
			return nil, fmt.Errorf("qemu: waiting for a free VM slot (another VM runs on this machine; %s raises the limit): %w", SlotsEnv, ctx.Err())
		case <-tick.C:
		}
	}
}

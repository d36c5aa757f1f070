package qemu

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/cpio"
	"github.com/swarmboot/swarmboot/pkg/debfix"
)

const marker = "SWARMBOOT-QEMU-TEST"

// initScript prints the marker with this boot's id and the command line,
// then powers off when the command line asks for it, else idles.
const initScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
echo "` + marker + ` boot=$(/bin/busybox cat /proc/sys/kernel/random/boot_id) cmdline=$(/bin/busybox cat /proc/cmdline)"
case "$(/bin/busybox cat /proc/cmdline)" in
*swarmboot.poweroff*) /bin/busybox poweroff -f ;;
esac
while :; do /bin/busybox sleep 60; done
`

func needQEMU(t *testing.T) {
	t.Helper()
	if err := Check(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not installed: the test kernel comes from Debian packages")
	}
}

// testInitrd writes a newc initramfs with busybox and initScript.
func testInitrd(t *testing.T, ctx context.Context) string {
	return testInitrdWith(t, ctx, initScript, nil)
}

// testInitrdWith writes a newc initramfs with busybox, init as /init and
// extra files (archive name → host file).
func testInitrdWith(t *testing.T, ctx context.Context, init string, extra map[string]string) string {
	t.Helper()
	bb, err := debfix.Busybox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	add := func(h cpio.Header, data []byte) {
		h.Size = int64(len(data))
		if err := w.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(cpio.Header{Name: "bin", Mode: fs.ModeDir | 0o755}, nil)
	add(cpio.Header{Name: "dev", Mode: fs.ModeDir | 0o755}, nil)
	add(cpio.Header{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1}, nil)
	add(cpio.Header{Name: "bin/busybox", Mode: 0o755}, bin)
	add(cpio.Header{Name: "init", Mode: 0o755}, []byte(init))
	if len(extra) > 0 {
		add(cpio.Header{Name: "m", Mode: fs.ModeDir | 0o755}, nil)
	}
	for name, src := range extra { // names under m/
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		add(cpio.Header{Name: name, Mode: 0o644}, b)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "initrd.cpio")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var markerRE = regexp.MustCompile(marker + ` boot=(\S+) cmdline=(.*)`)

// TestBootDebianKernel boots the Debian kernel with a busybox initrd under
// SeaBIOS, checks the marker and command line on the serial console, resets
// the VM through QMP, sees a second boot, and stops it.
func TestBootDebianKernel(t *testing.T) {
	needQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	initrd := testInitrd(t, ctx)
	logf := filepath.Join(t.TempDir(), "serial.log")
	start := time.Now()
	vm, err := Start(ctx, Config{Kernel: k.Vmlinuz, Initrd: initrd, Append: "quiet swarmboot.test=42", LogFile: logf, MemoryMiB: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	line, err := vm.WaitFor(ctx, markerRE)
	if err != nil {
		t.Fatalf("%v\nserial:\n%s", err, vm.Output())
	}
	t.Logf("marker after %v: %s", time.Since(start).Round(time.Millisecond), line)
	m := markerRE.FindStringSubmatch(line)
	if !strings.Contains(m[2], "swarmboot.test=42") || !strings.Contains(m[2], "console=ttyS0") {
		t.Errorf("cmdline %q lacks swarmboot.test=42 or console=ttyS0", m[2])
	}
	first := m[1]

	if err := vm.Reset(); err != nil {
		t.Fatal(err)
	}
	reset := time.Now()
	for {
		all := markerRE.FindAllStringSubmatch(vm.Output(), -1)
		if len(all) >= 2 {
			if all[1][1] == first {
				t.Fatalf("second boot has the same boot id %s", first)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no second boot after Reset\nserial:\n%s", vm.Output())
		case <-vm.Done():
			t.Fatalf("VM exited after Reset: %s", vm.Stderr())
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("second boot %v after Reset", time.Since(reset).Round(time.Millisecond))
	pid := vm.PID()
	if err := vm.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("QEMU pid %d still exists after Stop", pid)
	}
	b, err := os.ReadFile(logf)
	if err != nil || strings.Count(string(b), marker) != 2 {
		t.Errorf("serial log %s: %d markers, %v", logf, strings.Count(string(b), marker), err)
	}
}

// TestBootUEFIPoweroff boots the same kernel under OVMF; the guest powers
// off and QEMU exits on its own.
func TestBootUEFIPoweroff(t *testing.T) {
	needQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := Start(ctx, Config{Firmware: "uefi", Kernel: k.Vmlinuz, Initrd: testInitrd(t, ctx), Append: "quiet swarmboot.poweroff", MemoryMiB: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	if _, err := vm.WaitFor(ctx, markerRE); err != nil {
		t.Fatalf("%v\nserial:\n%s", err, vm.Output())
	}
	select {
	case <-vm.Done():
	case <-ctx.Done():
		t.Fatal("VM did not exit after poweroff")
	}
	if _, err := vm.WaitFor(ctx, regexp.MustCompile("never-printed")); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("WaitFor after exit: %v, want an exit error", err)
	}
}

// TestSeaBIOSSerialAndCancel checks that SeaBIOS's own messages reach the
// serial console (sercon) and that cancelling the context stops the VM.
func TestSeaBIOSSerialAndCancel(t *testing.T) {
	needQEMU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vmCtx, stop := context.WithCancel(ctx)
	vm, err := Start(vmCtx, Config{Boot: "c", MemoryMiB: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	if _, err := vm.WaitFor(ctx, regexp.MustCompile(`SeaBIOS|No bootable device`)); err != nil {
		t.Fatal(err)
	}
	stop()
	select {
	case <-vm.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("VM still running 10 s after its context was cancelled")
	}
}

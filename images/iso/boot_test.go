package iso

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/images/initrd"
	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/pkg/debfix"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

const bootMarker = "SWARMBOOT-ISO-BOOT"

// busyboxInitrd writes an initrd whose /init prints the marker and the
// command line, then powers off.
func busyboxInitrd(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	bb, err := debfix.Busybox(ctx)
	if err != nil {
		t.Skipf("busybox-static fixture: %v", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := initrd.NewWriter(f, initrd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\n" +
		"echo \"" + bootMarker + " cmdline=$(/bin/busybox cat /proc/cmdline)\"\n/bin/busybox poweroff -f\n"
	for _, e := range []struct {
		h    rootfs.Header
		data string
	}{
		{rootfs.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(data))}, string(data)},
		{rootfs.Header{Name: "init", Mode: 0o755, Size: int64(len(script))}, script},
		{rootfs.Header{Name: "dev/console", Mode: os.ModeDevice | os.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1}, ""},
	} {
		if err := w.WriteEntry(&e.h, strings.NewReader(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBootISO boots the ISO written to a disk (the isohybrid path) under
// SeaBIOS (isolinux via the MBR) and OVMF (systemd-boot from the 0xef
// partition) and waits for the marker with the command line.
func TestBootISO(t *testing.T) {
	if err := qemu.Check(); err != nil {
		t.Skip(err)
	}
	needAssets(t)
	ctx := t.Context()
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		t.Skipf("Debian kernel fixture: %v", err)
	}
	dir := t.TempDir()
	rd := filepath.Join(dir, "initrd.img")
	busyboxInitrd(t, ctx, rd)
	iso := filepath.Join(dir, "test.iso")
	cmdline := "console=ttyS0 panic=-1 swarmboot.test=iso"
	if err := Write(ctx, iso, Options{Kernel: k.Vmlinuz, Initrd: rd, Cmdline: cmdline}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  qemu.Config
	}{
		// CD-ROM boots are covered with the fixture image in images/build.
		{"bios-disk", qemu.Config{Firmware: "bios", Disks: []string{iso}, Boot: "c"}}, // isohybrid MBR → isolinux
		{"uefi-disk", qemu.Config{Firmware: "uefi", Disks: []string{iso}, Boot: "c"}}, // MBR partition 0xef → systemd-boot
	} {
		fw := c.name
		t.Run(fw, func(t *testing.T) {
			c.cfg.LogFile = filepath.Join(dir, fw+".log")
			// Start may wait for a machine-wide VM slot; the boot itself gets 3 minutes.
			vm, err := qemu.Start(t.Context(), c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Stop()
			wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
			defer wcancel()
			line, err := vm.WaitFor(wctx, regexp.MustCompile(bootMarker+` cmdline=.*swarmboot\.test=iso`))
			if err != nil {
				t.Fatalf("%s: %v\nserial:\n%s", fw, err, tail(vm.Output(), 3000))
			}
			t.Logf("%s: %s", fw, line)
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

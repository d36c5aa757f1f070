package iso

import (
	"context"
	"crypto/rand"
	"encoding/binary"
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
	filler := make([]byte, 40<<20)
	rand.Read(filler)
	script := "#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\n" +
		"echo \"" + bootMarker + " cmdline=$(/bin/busybox cat /proc/cmdline)\"\n/bin/busybox poweroff -f\n"
	for _, e := range []struct {
		h    rootfs.Header
		data string
	}{
		{rootfs.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(data))}, string(data)},
		{rootfs.Header{Name: "init", Mode: 0o755, Size: int64(len(script))}, script},
		{rootfs.Header{Name: "dev/console", Mode: os.ModeDevice | os.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1}, ""},
		// Incompressible filler: the EFI partition then exceeds 32 MiB, so
		// its El Torito sector count is 0 ("to the end"), as for real images.
		{rootfs.Header{Name: "filler", Mode: 0o644, Size: int64(len(filler))}, string(filler)},
	} {
		if err := w.WriteEntry(&e.h, strings.NewReader(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBootISO boots a busybox ISO whose EFI partition is over 32 MiB from
// CD-ROM under OVMF, and written to a disk (the isohybrid path) under
// SeaBIOS (isolinux via the MBR) and OVMF (systemd-boot from the 0xef
// partition); each must print the marker with the command line.
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
	if n := efiSectorCount(t, iso); n != 0 {
		t.Fatalf("EFI El Torito sector count %d, want 0 (partition over 32 MiB)", n)
	}
	for _, c := range []struct {
		name string
		cfg  qemu.Config
	}{
		// CD-ROM boots of a small image are covered with the fixture in
		// images/build; this one has an EFI partition over 32 MiB.
		{"uefi-cdrom-large-esp", qemu.Config{Firmware: "uefi", ISO: iso, Boot: "d"}},
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

// efiSectorCount reads the second El Torito entry's sector count.
func efiSectorCount(t *testing.T, iso string) uint16 {
	t.Helper()
	f, err := os.Open(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	brvd := make([]byte, isoSector)
	if _, err := f.ReadAt(brvd, 17*isoSector); err != nil {
		t.Fatal(err)
	}
	cat := make([]byte, 0x80)
	if _, err := f.ReadAt(cat, int64(binary.LittleEndian.Uint32(brvd[0x47:]))*isoSector); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint16(cat[0x66:])
}

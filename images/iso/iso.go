package iso

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// Boot assets from Debian packages (isolinux, syslinux-common,
// systemd-boot-efi).
const (
	DefaultIsolinux    = "/usr/lib/ISOLINUX/isolinux.bin"
	DefaultIsohdpfx    = "/usr/lib/ISOLINUX/isohdpfx.bin"
	DefaultLdlinux     = "/usr/lib/syslinux/modules/bios/ldlinux.c32"
	DefaultSystemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
)

// Options describe one ISO.
type Options struct {
	Kernel, Initrd string    // files to boot (required)
	Cmdline        string    // kernel command line, one line
	ModTime        time.Time // every timestamp in the image (zero: Unix epoch)
	VolumeID       string    // default "SWARMBOOT"

	// Boot assets; empty means the Debian path (Default*).
	Isolinux, Isohdpfx, Ldlinux, SystemdBoot string
	// TempDir holds the staging directory (boot assets and the EFI
	// partition image, which is as large as kernel + initrd); default: the
	// output's directory.
	TempDir string
}

// ErrAsset is returned when a boot asset is missing; the message names the
// Debian package to install.
var ErrAsset = errors.New("iso: boot asset missing")

func (o *Options) defaults() {
	set := func(p *string, d string) {
		if *p == "" {
			*p = d
		}
	}
	set(&o.Isolinux, DefaultIsolinux)
	set(&o.Isohdpfx, DefaultIsohdpfx)
	set(&o.Ldlinux, DefaultLdlinux)
	set(&o.SystemdBoot, DefaultSystemdBoot)
	set(&o.VolumeID, "SWARMBOOT")
	if o.ModTime.IsZero() {
		o.ModTime = time.Unix(0, 0)
	}
	o.ModTime = o.ModTime.UTC().Truncate(2 * time.Second)
}

// CheckAssets reports which boot assets are missing and how to get them.
func (o Options) CheckAssets() error {
	o.defaults()
	var missing []string
	for _, a := range []struct{ path, pkg string }{
		{o.Isolinux, "isolinux"}, {o.Isohdpfx, "isolinux"}, {o.Ldlinux, "syslinux-common"},
		{o.SystemdBoot, "systemd-boot-efi"},
	} {
		if _, err := os.Stat(a.path); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", a.path, a.pkg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrAsset, strings.Join(missing, ", "))
	}
	return nil
}

// isolinuxCfg and the systemd-boot entry start the same kernel and initrd
// with the same command line.
func isolinuxCfg(cmdline string) string {
	return "DEFAULT swarmboot\nPROMPT 0\nTIMEOUT 0\nLABEL swarmboot\n" +
		"  KERNEL /boot/vmlinuz\n  INITRD /boot/initrd.img\n  APPEND " + cmdline + "\n"
}

func loaderConf() string { return "default swarmboot.conf\ntimeout 0\nconsole-mode keep\n" }

func loaderEntry(cmdline string) string {
	return "title swarmboot\nlinux /vmlinuz\ninitrd /initrd.img\noptions " + cmdline + "\n"
}

// Write builds the ISO at out (written to a temporary name in the same
// directory, then renamed).
func Write(ctx context.Context, out string, opt Options) (err error) {
	opt.defaults()
	if strings.ContainsAny(opt.Cmdline, "\n\r") {
		return fmt.Errorf("iso: kernel command line has a line break")
	}
	if err := opt.CheckAssets(); err != nil {
		return err
	}
	tmpDir := opt.TempDir
	if tmpDir == "" {
		tmpDir = filepath.Dir(out)
	}
	ws, err := os.MkdirTemp(tmpDir, ".iso-stage-")
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	defer os.RemoveAll(ws)
	shared, err := stage(ws, opt)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	defer func() {
		tmp.Close()
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	fs, err := iso9660.Create(file.New(tmp, false), 0, 0, 2048, ws)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	bios := &iso9660.ElToritoEntry{Platform: iso9660.BIOS, Emulation: iso9660.NoEmulation,
		BootFile: "/isolinux/isolinux.bin", BootTable: true}
	bios.SetLoadSize(4)
	efi := &iso9660.ElToritoEntry{Platform: iso9660.EFI, Emulation: iso9660.NoEmulation,
		BootFile: "/boot/efiboot.img"}
	err = fs.Finalize(iso9660.FinalizeOptions{
		VolumeIdentifier: opt.VolumeID,
		ElTorito: &iso9660.ElTorito{BootCatalog: "/isolinux/boot.cat", HideBootCatalog: true,
			Entries: []*iso9660.ElToritoEntry{bios, efi}},
	})
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	if err := fixDates(tmp, opt.ModTime); err != nil {
		return err
	}
	if err := shareExtents(tmp, shared); err != nil {
		return err
	}
	if err := makeHybrid(tmp, opt.Isohdpfx); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	return os.Rename(tmp.Name(), out)
}

// stage lays out the ISO tree in ws: boot assets, the EFI system partition
// image and empty stand-ins for kernel and initrd, all with opt.ModTime.
// Kernel and initrd are stored once, inside the ESP; their ISO 9660
// directory records are pointed there after Finalize (shareExtents), so
// the image does not hold them twice.
func stage(ws string, opt Options) (map[string]*File, error) {
	for _, d := range []string{"isolinux", "boot"} {
		if err := os.Mkdir(filepath.Join(ws, d), 0o755); err != nil {
			return nil, fmt.Errorf("iso: %w", err)
		}
	}
	put := []struct{ src, dst string }{
		{opt.Isolinux, "isolinux/isolinux.bin"}, {opt.Ldlinux, "isolinux/ldlinux.c32"},
	}
	for _, p := range put {
		if err := copyFile(p.src, filepath.Join(ws, p.dst)); err != nil {
			return nil, fmt.Errorf("iso: %w", err)
		}
	}
	for _, p := range []string{"boot/vmlinuz", "boot/initrd.img"} {
		if err := os.WriteFile(filepath.Join(ws, p), nil, 0o644); err != nil {
			return nil, fmt.Errorf("iso: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(ws, "isolinux/isolinux.cfg"), []byte(isolinuxCfg(opt.Cmdline)), 0o644); err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	esp, err := os.Create(filepath.Join(ws, "boot/efiboot.img"))
	if err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	kernel, initrd := &File{Path: "/vmlinuz", Source: opt.Kernel}, &File{Path: "/initrd.img", Source: opt.Initrd}
	_, err = WriteFAT(esp, []*File{
		{Path: "/EFI/BOOT/BOOTX64.EFI", Source: opt.SystemdBoot},
		{Path: "/loader/loader.conf", Data: []byte(loaderConf())},
		{Path: "/loader/entries/swarmboot.conf", Data: []byte(loaderEntry(opt.Cmdline))},
		kernel, initrd,
	}, opt.ModTime)
	if cerr := esp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("iso: EFI system partition: %w", err)
	}
	// Directory times last: creating entries changes them.
	for _, p := range []string{"isolinux/isolinux.bin", "isolinux/ldlinux.c32", "isolinux/isolinux.cfg",
		"boot/vmlinuz", "boot/initrd.img", "boot/efiboot.img", "isolinux", "boot", "."} {
		if err := os.Chtimes(filepath.Join(ws, p), opt.ModTime, opt.ModTime); err != nil {
			return nil, fmt.Errorf("iso: %w", err)
		}
	}
	return map[string]*File{"VMLINUZ": kernel, "INITRD.IMG": initrd}, nil
}

// copyFile copies a boot asset into the staging tree (a copy, not a hard
// link: staging changes its times).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

package bootserve

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Loaders are the iPXE binaries served over TFTP (and HTTP for UEFI HTTP
// boot), by the names DHCP hands out.
var Loaders = []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"}

// DebianIPXEDirs are where Debian's ipxe package installs them
// (/usr/lib/ipxe/ipxe.efi is a symlink to /boot/ipxe.efi).
var DebianIPXEDirs = []string{"/usr/lib/ipxe", "/boot"}

// StageLoaders copies the iPXE loaders into dst, which then becomes the
// TFTP root: the sources may be symlinks pointing anywhere, the served
// root holds only regular files. It searches dir when it is set, else
// DebianIPXEDirs. Missing loaders are an error naming the package to
// install; at least undionly.kpxe and ipxe.efi are needed.
func StageLoaders(dir, dst string) ([]string, error) {
	search := DebianIPXEDirs
	if dir != "" {
		search = []string{dir}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("stage iPXE loaders: %w", err)
	}
	var staged []string
	for _, name := range Loaders {
		var src string
		for _, d := range search {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				src = p
				break
			}
		}
		if src == "" {
			if name == "snponly.efi" {
				continue // optional
			}
			return nil, fmt.Errorf("iPXE loader %s not found in %v: install Debian's ipxe package (apt-get install ipxe) or pass --ipxe-dir DIR", name, search)
		}
		if err := copyFile(src, filepath.Join(dst, name)); err != nil {
			return nil, fmt.Errorf("stage iPXE loader %s: %w", name, err)
		}
		staged = append(staged, name)
	}
	return staged, nil
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".stage-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, in); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

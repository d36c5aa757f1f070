// Package safefile opens files named by untrusted clients (TFTP file names,
// HTTP paths) inside one directory that no name can escape: ".."
// components, absolute paths, symlinks pointing outside, NUL and control
// bytes, over-long names and anything that is not a regular file are
// refused with ErrRefused.
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// MaxName is the longest name accepted, in bytes.
const MaxName = 255

var (
	// ErrRefused is returned for names that are not allowed.
	ErrRefused = errors.New("safefile: name refused")
	// ErrNotFound is returned for allowed names that do not exist.
	ErrNotFound = errors.New("safefile: file not found")
)

// Check validates name without touching the file system and returns the
// slash-separated relative name to open. Backslashes (sent by some Windows
// PXE clients) count as separators.
func Check(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrRefused)
	}
	if len(name) > MaxName {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrRefused, MaxName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: control byte %#x", ErrRefused, c)
		}
	}
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("%w: absolute path", ErrRefused)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: parent directory component", ErrRefused)
		}
	}
	if !fs.ValidPath(n) {
		return "", fmt.Errorf("%w: not a clean relative path", ErrRefused)
	}
	return n, nil
}

// Dir is a directory that files are opened from.
type Dir struct {
	root *os.Root
}

// Open returns the directory at path.
func Open(path string) (*Dir, error) {
	r, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("open serving root: %w", err)
	}
	return &Dir{root: r}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Open checks name and opens it read-only. Only regular files are returned;
// FIFOs and devices are opened non-blocking so a FIFO planted in the root
// cannot stall the caller.
func (d *Dir) Open(name string) (*os.File, fs.FileInfo, error) {
	n, err := Check(name)
	if err != nil {
		return nil, nil, err
	}
	f, err := d.root.OpenFile(n, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, n)
		case errors.Is(err, fs.ErrPermission):
			return nil, nil, fmt.Errorf("%w: permission denied", ErrRefused)
		}
		// os.Root reports escapes ("path escapes from parent") and other
		// invalid names as plain errors: treat them all as refusals.
		return nil, nil, fmt.Errorf("%w: %v", ErrRefused, trimPath(err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", n, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: not a regular file", ErrRefused)
	}
	return f, fi, nil
}

// trimPath drops the path from *fs.PathError so that refusals never echo
// directory layout back to a client.
func trimPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

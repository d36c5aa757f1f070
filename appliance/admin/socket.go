package admin

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SocketName is the admin socket's file name inside the data dir.
const SocketName = "admin.sock"

// SocketPath is the admin socket of the appliance whose data dir is dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// maxSocketPath is the longest path a unix socket address holds on Linux
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// ErrInUse is returned by Listen when something answers on the socket.
var ErrInUse = errors.New("admin: socket in use")

// socketListener removes its socket file on Close, but only while the
// path is still the socket it created.
type socketListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		_ = os.Remove(l.path)
	}
	return err
}

// Listen creates the unix socket at path, mode 0600, atomically: it is
// bound inside a fresh 0700 directory next to path, made 0600 there and
// renamed into place, so it never exists at path with other permissions.
// A socket file left by a crashed run is removed only when nothing
// answers on it; when something does, Listen fails with ErrInUse. Close
// removes the socket file.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("admin socket %s: the path is %d bytes, unix sockets take at most %d: use a shorter --data-dir", path, len(path), maxSocketPath)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, ".a")
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	bind := filepath.Join(tmp, "s")
	if len(bind) > maxSocketPath {
		return nil, fmt.Errorf("admin socket %s: the path is too long to bind (%s is %d bytes, at most %d): use a shorter --data-dir", path, bind, len(bind), maxSocketPath)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: bind, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ul.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(bind, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(bind, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &socketListener{UnixListener: ul, path: path, fi: fi}, nil
}

// removeStale removes a socket file at path that nothing answers on. A
// file that is not a socket is left alone (and refused).
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("admin socket %s: the path exists and is not a socket: move it away", path)
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s answers: another appliance runs on this data dir; stop it first", ErrInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin socket %s: cannot tell whether it is in use (%v): stop whatever holds it, or remove it", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("admin socket %s: remove the stale socket: %w", path, err)
	}
	return nil
}

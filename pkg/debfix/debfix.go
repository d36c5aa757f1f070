// Package debfix turns Debian packages into test fixtures: it downloads
// .deb files with apt-get into a shared cache (flock'd, so concurrent test
// processes do not collide), extracts them with dpkg-deb, and knows where the
// Debian kernel and a static busybox live inside them.
package debfix

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// CacheDir is where downloaded packages and their extractions live:
// $SWARMBOOT_FIXTURES, else /var/cache/swarmboot/fixtures for root, else
// ~/.cache/swarmboot/fixtures.
func CacheDir() string {
	if d := os.Getenv("SWARMBOOT_FIXTURES"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/cache/swarmboot/fixtures"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "swarmboot", "fixtures")
	}
	return filepath.Join(os.TempDir(), "swarmboot-fixtures")
}

var pkgName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// lock takes an exclusive flock on CacheDir()/.lock; the returned func
// releases it. Locks are per open file, so goroutines of one process and
// separate processes serialize alike.
func lock(ctx context.Context) (func(), error) {
	dir := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("debfix: create cache %s: %w (set $SWARMBOOT_FIXTURES to a writable directory)", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("debfix: open lock: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("debfix: lock %s: %w", f.Name(), err)
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		// Closing the file does not interrupt flock; let the goroutine finish
		// and release whatever it got.
		go func() { <-done; f.Close() }()
		return nil, ctx.Err()
	}
}

// Fetch returns the path of pkg's .deb in the cache, downloading it with
// `apt-get download` the first time.
func Fetch(ctx context.Context, pkg string) (string, error) {
	unlock, err := lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	return fetchLocked(ctx, pkg)
}

func fetchLocked(ctx context.Context, pkg string) (string, error) {
	if !pkgName.MatchString(pkg) {
		return "", fmt.Errorf("debfix: %q is not a Debian package name", pkg)
	}
	dir := filepath.Join(CacheDir(), "debs")
	if deb := cached(dir, pkg); deb != "" {
		return deb, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("debfix: %w", err)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("%w: fetching %s needs a Debian system with apt", ErrNoApt, pkg)
	}
	// apt-get download writes into the working directory; a private
	// temporary directory keeps half-written files out of the cache.
	tmp, err := os.MkdirTemp(dir, ".dl-")
	if err != nil {
		return "", fmt.Errorf("debfix: %w", err)
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755) // let the _apt sandbox user write there
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg)
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("debfix: apt-get download %s: %w: %s (is apt reachable? try `apt-get update`)",
			pkg, err, strings.TrimSpace(out.String()))
	}
	got, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("debfix: apt-get download %s left %d .deb files: %s", pkg, len(got), out.String())
	}
	deb := filepath.Join(dir, filepath.Base(got[0]))
	if err := os.Rename(got[0], deb); err != nil {
		return "", fmt.Errorf("debfix: %w", err)
	}
	return deb, nil
}

// cached returns the newest cached .deb of pkg, or "".
func cached(dir, pkg string) string {
	got, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(got) == 0 {
		return ""
	}
	sort.Strings(got)
	return got[len(got)-1]
}

// Extract unpacks deb's data into dir (dpkg-deb -x), creating dir.
func Extract(ctx context.Context, deb, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("debfix: %w", err)
	}
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("debfix: dpkg-deb -x %s: %w: %s", deb, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Packages fetches each package and extracts them all into dir.
func Packages(ctx context.Context, dir string, pkgs ...string) error {
	for _, p := range pkgs {
		deb, err := Fetch(ctx, p)
		if err != nil {
			return err
		}
		if err := Extract(ctx, deb, dir); err != nil {
			return err
		}
	}
	return nil
}

// extracted returns CacheDir()/tree/<name>, extracting the packages there
// (atomically, under the lock) the first time.
func extracted(ctx context.Context, name string, pkgs ...string) (string, error) {
	unlock, err := lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	dst := filepath.Join(CacheDir(), "tree", name)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("debfix: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+name+"-")
	if err != nil {
		return "", fmt.Errorf("debfix: %w", err)
	}
	for _, p := range pkgs {
		deb, err := fetchLocked(ctx, p)
		if err == nil {
			err = Extract(ctx, deb, tmp)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return "", err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("debfix: %w", err)
	}
	return dst, nil
}

// Field returns one control field of a .deb (dpkg-deb -f).
func Field(ctx context.Context, deb, field string) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, field).Output()
	if err != nil {
		return "", fmt.Errorf("debfix: dpkg-deb -f %s %s: %w", deb, field, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Kernel is an extracted Debian kernel package.
type Kernel struct {
	Version string // e.g. 6.1.0-28-amd64
	Vmlinuz string // path of the kernel image
	Modules string // directory lib/modules/<Version>
}

// DebianKernel fetches and extracts the versioned kernel package that
// linux-image-amd64 depends on, once; later calls reuse the extraction.
func DebianKernel(ctx context.Context) (*Kernel, error) {
	meta, err := Fetch(ctx, "linux-image-amd64")
	if err != nil {
		return nil, err
	}
	dep, err := Field(ctx, meta, "Depends")
	if err != nil {
		return nil, err
	}
	pkg := firstDep(dep)
	if pkg == "" {
		return nil, fmt.Errorf("debfix: %s: no kernel package in Depends %q", meta, dep)
	}
	root, err := extracted(ctx, pkg, pkg)
	if err != nil {
		return nil, err
	}
	mods, _ := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if len(mods) != 1 {
		return nil, fmt.Errorf("debfix: %s: want one lib/modules/<version> in %s, found %d", pkg, root, len(mods))
	}
	k := &Kernel{Version: filepath.Base(mods[0]), Modules: mods[0]}
	k.Vmlinuz = filepath.Join(root, "boot", "vmlinuz-"+k.Version)
	if _, err := os.Stat(k.Vmlinuz); err != nil {
		return nil, fmt.Errorf("debfix: %s: %w", pkg, err)
	}
	return k, nil
}

// firstDep returns the package name of the first alternative in a Depends
// field, e.g. "linux-image-6.1.0-28-amd64 (= 6.1.119-1)" → its name.
func firstDep(dep string) string {
	first, _, _ := strings.Cut(dep, ",")
	first, _, _ = strings.Cut(first, "|")
	f := strings.Fields(first)
	if len(f) == 0 || !pkgName.MatchString(f[0]) {
		return ""
	}
	return f[0]
}

// Busybox returns the path of the static busybox from Debian's
// busybox-static package.
func Busybox(ctx context.Context) (string, error) {
	root, err := extracted(ctx, "busybox-static", "busybox-static")
	if err != nil {
		return "", err
	}
	bb := filepath.Join(root, "bin", "busybox")
	if _, err := os.Stat(bb); err != nil {
		return "", fmt.Errorf("debfix: busybox-static: %w", err)
	}
	return bb, nil
}

// ErrNoApt is returned when apt-get is not installed.
var ErrNoApt = errors.New("debfix: apt-get not found")

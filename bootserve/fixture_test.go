package bootserve_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/cpio"
	"github.com/swarmboot/swarmboot/pkg/debfix"
)

// marker is what the fixture /init prints on the serial console.
const marker = "SWARMBOOT-PXE-MARKER"

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

// bootFixture returns an artifacts directory with the image "fixture":
// Debian's kernel (pkg/debfix) and a busybox initrd whose /init prints
// marker and the command line, then powers off.
func bootFixture(t testing.TB) string {
	t.Helper()
	fixtureOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		fixtureDir, fixtureErr = makeFixture(ctx)
	})
	if fixtureErr != nil {
		t.Fatalf("boot fixture: %v", fixtureErr)
	}
	return fixtureDir
}

func makeFixture(ctx context.Context) (string, error) {
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		return "", err
	}
	bb, err := debfix.Busybox(ctx)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "swarmboot-pxe-fixture-")
	if err != nil {
		return "", err
	}
	kb, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "fixture-kernel"), kb, 0o644); err != nil {
		return "", err
	}
	bbBytes, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	initScript := "#!/bin/busybox sh\n" +
		"/bin/busybox mount -t proc proc /proc\n" +
		"echo \"" + marker + " cmdline=$(/bin/busybox cat /proc/cmdline)\"\n" +
		"/bin/busybox poweroff -f\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	cw := cpio.NewWriter(zw)
	now := time.Unix(0, 0)
	entries := []struct {
		h    cpio.Header
		data []byte
	}{
		{cpio.Header{Name: "bin", Mode: fs.ModeDir | 0o755, ModTime: now}, nil},
		{cpio.Header{Name: "dev", Mode: fs.ModeDir | 0o755, ModTime: now}, nil},
		{cpio.Header{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Devmajor: 5, Devminor: 1, ModTime: now}, nil},
		{cpio.Header{Name: "proc", Mode: fs.ModeDir | 0o755, ModTime: now}, nil},
		{cpio.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bbBytes)), ModTime: now}, bbBytes},
		{cpio.Header{Name: "bin/sh", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox", ModTime: now}, nil},
		{cpio.Header{Name: "init", Mode: 0o755, Size: int64(len(initScript)), ModTime: now}, []byte(initScript)},
	}
	for _, e := range entries {
		h := e.h
		if err := cw.WriteHeader(&h); err != nil {
			return "", err
		}
		if e.data != nil {
			if _, err := cw.Write(e.data); err != nil {
				return "", err
			}
		}
	}
	if err := cw.Close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "fixture-initrd.img"), gz.Bytes(), 0o644); err != nil {
		return "", err
	}
	cmdline := "console=ttyS0 panic=-1 loglevel=3"
	return dir, os.WriteFile(filepath.Join(dir, "fixture-cmdline"), []byte(cmdline+"\n"), 0o644)
}

package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/swarmboot/swarmboot/pkg/cpio"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

// TestInitBootsAsPID1 boots the fixture kernel with an initramfs made of
// nothing but the flattened fixture init image: /init must run as PID 1,
// print the marker with the command line, and power the VM off.
func TestInitBootsAsPID1(t *testing.T) {
	if err := qemu.Check(); err != nil {
		t.Skip(err)
	}
	s := openStore(t)
	fx := Populate(t, s)
	dir := t.TempDir()

	kimg, err := s.Image(fx.Kernel, "")
	if err != nil {
		t.Fatal(err)
	}
	_, kdata := files(t, kimg)
	kernel := filepath.Join(dir, "kernel")
	if err := os.WriteFile(kernel, kdata["kernel"], 0o644); err != nil {
		t.Fatal(err)
	}
	iimg, err := s.Image(fx.Init, "")
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	writeInitramfs(t, mutate.Extract(iimg), initrd)

	// Other packages' tests boot VMs too: waiting for the machine-wide VM
	// slot is not part of the boot's time budget.
	slotCtx, cancelSlot := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancelSlot()
	release, err := qemu.AcquireSlot(slotCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{Kernel: kernel, Initrd: initrd, Append: "console=ttyS0 swarmboot.test=fixture", MemoryMiB: 256, NoSlot: true})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	re := regexp.MustCompile(Marker + ` cmdline=(.*)`)
	line, err := vm.WaitFor(ctx, re)
	if err != nil {
		t.Fatalf("%v\nserial:\n%s", err, vm.Output())
	}
	if m := re.FindStringSubmatch(line); !strings.Contains(m[1], "swarmboot.test=fixture") {
		t.Fatalf("marker line %q lacks the command line", line)
	}
	t.Logf("marker after %v: %s", time.Since(start).Round(time.Millisecond), line)
	select {
	case <-vm.Done():
	case <-ctx.Done():
		t.Fatalf("the VM did not power off after the marker\nserial:\n%s", vm.Output())
	}
	if strings.Contains(vm.Output(), "Kernel panic") {
		t.Fatalf("kernel panic (did /init exit?)\nserial:\n%s", vm.Output())
	}
}

// writeInitramfs converts a flattened image tar into a newc cpio.
func writeInitramfs(t *testing.T, rc io.ReadCloser, out string) {
	t.Helper()
	defer rc.Close()
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ch := &cpio.Header{Name: strings.TrimSuffix(cleanRel(h.Name), "/"), Mode: h.FileInfo().Mode(), ModTime: h.ModTime, Devmajor: h.Devmajor, Devminor: h.Devminor}
		if ch.Name == "" || ch.Name == "." {
			continue
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			ch.Linkname = h.Linkname
		case tar.TypeReg:
			ch.Size = h.Size
		case tar.TypeDir, tar.TypeChar:
		default:
			continue
		}
		if err := w.WriteHeader(ch); err != nil {
			t.Fatalf("%s: %v", ch.Name, err)
		}
		if ch.Size > 0 {
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, buf.Bytes(), fs.FileMode(0o644)); err != nil {
		t.Fatal(err)
	}
}

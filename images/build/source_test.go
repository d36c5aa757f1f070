package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmboot/swarmboot/images/rootfs"
)

// fakeSource streams one file and returns a kernel, optionally microcode,
// or fails after the entry.
type fakeSource struct {
	ucode []byte
	fail  error
}

func (f fakeSource) Assemble(ctx context.Context, w rootfs.Writer) (*Rootfs, error) {
	if err := w.WriteEntry(&rootfs.Header{Name: "init", Mode: 0o755, Size: 2}, strings.NewReader("hi")); err != nil {
		return nil, err
	}
	if f.fail != nil {
		return nil, f.fail
	}
	return &Rootfs{Kernel: []byte("kernel"), Ucode: f.ucode, Cmdline: "quiet"}, nil
}

// TestUcodeFirst: the kernel image's microcode cpio goes, uncompressed,
// before the gzip'd initrd, and the manifest hashes the whole file.
func TestUcodeFirst(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	ucode := []byte("070701ucode-cpio")
	m, err := Build(context.Background(), fakeSource{ucode: ucode}, Options{Name: "u", OutDir: out, Formats: []string{FormatKernelInitrd}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "u-initrd.img"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, ucode) || !bytes.HasPrefix(data[len(ucode):], []byte{0x1f, 0x8b}) {
		t.Errorf("initrd starts % x, want the ucode then gzip", data[:min(len(data), 24)])
	}
	sum := sha256.Sum256(data)
	for _, a := range m.Artifacts {
		if a.Kind == "initrd" && (a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(data))) {
			t.Errorf("manifest initrd %s/%d, file %x/%d", a.SHA256, a.Size, sum, len(data))
		}
	}
	if ents, _ := os.ReadDir(out); len(ents) != 5 {
		t.Errorf("%d files in the output directory, want 5 (no temporaries)", len(ents))
	}
}

// TestFailureLeavesNothing: a failing source leaves no artifact and no
// temporary file behind.
func TestFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	boom := errors.New("boom")
	_, err := Build(context.Background(), fakeSource{fail: boom}, Options{Name: "f", OutDir: out})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "build f:") {
		t.Errorf("err = %v, want the source's error naming the build", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("output directory not empty after a failed build: %v", ents)
	}
}

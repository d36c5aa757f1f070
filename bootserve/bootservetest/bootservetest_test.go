package bootservetest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestArtifacts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	art, ipxe := Artifacts(t, dir, "lab")
	if art != filepath.Join(dir, "out") || ipxe != filepath.Join(dir, "ipxe") {
		t.Fatalf("directories %s, %s; want out and ipxe under %s", art, ipxe, dir)
	}
	for p, want := range map[string]string{
		filepath.Join(art, "lab-kernel"): Kernel, filepath.Join(art, "lab-initrd.img"): Initrd,
		filepath.Join(art, "lab-cmdline"):    Cmdline + "\n",
		filepath.Join(ipxe, "undionly.kpxe"): UNDI, filepath.Join(ipxe, "ipxe.efi"): EFI,
	} {
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("FreeAddr = %q, want 127.0.0.1:PORT", addr)
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("the free address cannot be listened on: %v", err)
	}
	l.Close()
}

package bootserve

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"golang.org/x/sys/unix"

	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/bootserve/internal/sockbuf"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirBooter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "worker-kernel"), "K")
	writeFile(t, filepath.Join(dir, "worker-initrd.img"), "I")
	writeFile(t, filepath.Join(dir, "worker-cmdline"), "console=ttyS0\n  quiet\n")
	a, _ := net.ParseMAC("52:54:00:00:00:0a")
	b, _ := net.ParseMAC("52:54:00:00:00:0b")
	machines, err := NormalizeMachines(map[string]MachineEntry{"52-54-00-00-00-0A": {Args: "swarmboot.role=manager"}})
	if err != nil {
		t.Fatal(err)
	}
	d := &DirBooter{Dir: dir, Machines: machines}
	got, err := d.Boot(context.Background(), Machine{MAC: a})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "worker" || got.Kernel != "worker-kernel" || got.Initrd[0] != "worker-initrd.img" ||
		got.Cmdline != "console=ttyS0 quiet" || got.Args != "swarmboot.role=manager" {
		t.Errorf("Boot(a) = %+v", got)
	}
	// The only image is the default for everyone.
	if got, err := d.Boot(context.Background(), Machine{MAC: b}); err != nil || got.Name != "worker" || got.Args != "" {
		t.Errorf("Boot(b) = %+v, %v", got, err)
	}
	// With two images and no default, b is unknown.
	writeFile(t, filepath.Join(dir, "other-kernel"), "K")
	if _, err := d.Boot(context.Background(), Machine{MAC: b}); !errors.Is(err, ErrUnknown) {
		t.Errorf("Boot(b) with two images = %v, want ErrUnknown", err)
	}
	// A default naming an incomplete image says what is missing.
	d.Default = "other"
	if _, err := d.Boot(context.Background(), Machine{MAC: b}); err == nil || !strings.Contains(err.Error(), "other-initrd.img is missing") {
		t.Errorf("Boot(b) incomplete default = %v", err)
	}
	d.Machines = map[string]MachineEntry{b.String(): {Image: "../x"}}
	if _, err := d.Boot(context.Background(), Machine{MAC: b}); err == nil {
		t.Error("image name with a path was accepted")
	}
	if _, err := NormalizeMachines(map[string]MachineEntry{"nope": {}}); err == nil {
		t.Error("bad MAC accepted")
	}
}

func TestStageLoaders(t *testing.T) {
	t.Parallel()
	src, dst := t.TempDir(), t.TempDir()
	if _, err := StageLoaders(src, dst); err == nil || !strings.Contains(err.Error(), "apt-get install ipxe") {
		t.Fatalf("missing loaders: %v", err)
	}
	writeFile(t, filepath.Join(src, "undionly.kpxe"), "BIOS")
	real := filepath.Join(t.TempDir(), "real.efi")
	writeFile(t, real, "EFI")
	if err := os.Symlink(real, filepath.Join(src, "ipxe.efi")); err != nil {
		t.Fatal(err)
	}
	got, err := StageLoaders(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "undionly.kpxe,ipxe.efi" {
		t.Errorf("staged %v", got)
	}
	fi, err := os.Lstat(filepath.Join(dst, "ipxe.efi"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("ipxe.efi staged as %v, %v; want a regular file", fi, err)
	}
}

// TestServerLoopback runs the composed server with DHCP off on loopback:
// TFTP and HTTP land on one timeline.
func TestServerLoopback(t *testing.T) {
	t.Parallel()
	state, art, ipxe := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(ipxe, "undionly.kpxe"), "BIOS-LOADER")
	writeFile(t, filepath.Join(ipxe, "ipxe.efi"), "EFI-LOADER")
	writeFile(t, filepath.Join(art, "worker-kernel"), "KERNEL")
	writeFile(t, filepath.Join(art, "worker-initrd.img"), "INITRD")
	tl := &timeline.Log{}
	s, err := New(Config{DHCP: dhcp.ModeOff, ServerIP: net.IPv4(127, 0, 0, 1), HTTPAddr: "127.0.0.1:0", TFTPAddr: "127.0.0.1:0",
		Artifacts: art, IPXEDir: ipxe, StateDir: state, Booter: &DirBooter{Dir: art}, Timeline: tl})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	// A storm's first requests may come before Run reads: the request
	// socket has its room from Listen on.
	if n := rcvbuf(t, s.tftpConn); os.Geteuid() == 0 && n < 2*sockbuf.Default {
		t.Errorf("TFTP socket receive buffer after Listen: %d bytes, want at least %d", n, 2*sockbuf.Default)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	c, err := tftp.NewClient(s.TFTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	wt, err := c.Receive("undionly.kpxe", "octet")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	if _, err := wt.WriteTo(&sb); err != nil || sb.String() != "BIOS-LOADER" {
		t.Fatalf("tftp undionly.kpxe = %q, %v", sb.String(), err)
	}
	// The server counts a transfer when the last ACK arrives, just after
	// the client returns.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ev := tl.Events(nil); len(ev) > 0 && ev[0].Kind == timeline.TFTP {
			break
		}
	}
	base := "http://" + s.HTTPAddr().String()
	mac := "52:54:00:00:00:42"
	for _, p := range []string{"/boot/" + mac + ".ipxe", "/artifacts/worker-kernel?mac=" + mac, "/artifacts/worker-initrd.img?mac=" + mac, "/metrics"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, b)
		}
		if p == "/metrics" && (!strings.Contains(string(b), "swarmboot_tftp_transfers_total 1") || !strings.Contains(string(b), "swarmboot_http_artifact_bytes_total")) {
			t.Errorf("/metrics lacks TFTP or HTTP series:\n%s", b)
		}
	}
	m, _ := net.ParseMAC(mac)
	if miss, ok := timeline.InOrder(tl.Events(m), timeline.Script, timeline.Kernel, timeline.Initrd); !ok {
		t.Errorf("timeline lacks %s: %v", miss, tl.Events(m))
	}
}

func rcvbuf(t *testing.T, c net.PacketConn) int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var gerr error
	if err := rc.Control(func(fd uintptr) { n, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return n
}

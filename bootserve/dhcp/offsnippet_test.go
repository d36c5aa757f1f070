package dhcp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docSnippet returns the indented block under heading in docs/dhcp.md.
func docSnippet(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "dhcp.md"))
	if err != nil {
		t.Fatalf("read docs/dhcp.md: %v", err)
	}
	_, after, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/dhcp.md has no %q section", heading)
	}
	var lines []string
	for _, l := range strings.Split(after, "\n") {
		if strings.HasPrefix(l, "    ") {
			lines = append(lines, strings.TrimPrefix(l, "    "))
		} else if len(lines) > 0 && l != "" {
			break
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestDnsmasqOffSnippet runs dnsmasq with the off-mode snippet from
// docs/dhcp.md (10.0.0.x moved into the test network) and checks what BIOS,
// UEFI, UEFI HTTP and iPXE clients are told.
func TestDnsmasqOffSnippet(t *testing.T) {
	needLab(t, "busybox", "dnsmasq")
	l := newLab(t)
	dir := t.TempDir()
	conf := strings.ReplaceAll(docSnippet(t, "### dnsmasq"), "10.0.0.", "10.77.0.")
	if !strings.Contains(conf, "dhcp-boot=") {
		t.Fatalf("snippet has no dhcp-boot line:\n%s", conf)
	}
	confPath := filepath.Join(dir, "dnsmasq.conf")
	logf := filepath.Join(dir, "log")
	os.WriteFile(confPath, []byte(conf), 0o644)
	cmd := l.srv.Command(context.Background(), "dnsmasq", "--no-daemon", "--conf-file="+confPath, "--port=0",
		"--interface=br0", "--bind-interfaces", "--no-ping", "--dhcp-leasefile="+filepath.Join(dir, "leases"), "--log-facility="+logf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if b, _ := os.ReadFile(logf); strings.Contains(string(b), "DHCP, IP range") {
			break
		} else if i > 100 {
			t.Fatalf("dnsmasq did not start: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bios", []string{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"}, "boot_file=undionly.kpxe siaddr=10.77.0.5"},
		{"uefi", []string{"-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"}, "boot_file=ipxe.efi siaddr=10.77.0.5"},
		{"http", []string{"-V", "HTTPClient:Arch:00016:UNDI:003001", "-x", "0x5d:0010"}, "boot_file=http://10.77.0.5:8080/ipxe.efi "},
		{"ipxe", []string{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000", "-x", "0x4d:69505845"}, "boot_file=http://10.77.0.5:8080/boot/${mac}.ipxe "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := l.udhcpc(t, tc.args...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("udhcpc: %v; saw %q, want %q", err, out, tc.want)
			}
		})
	}
}

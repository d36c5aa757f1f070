package tftp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package in scripts/deps.sh): %v", name, err)
	}
	return p
}

// TestCurlClient fetches with curl's TFTP client, blksize 1468.
func TestCurlClient(t *testing.T) {
	t.Parallel()
	curl := needTool(t, "curl")
	fx := startServer(t)
	out := filepath.Join(t.TempDir(), "big.bin")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--max-time", "20",
		"--tftp-blksize", "1468", "-o", out, "tftp://"+fx.addr+"/sub/big.bin")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	mustDo(t, err)
	if !bytes.Equal(got, fx.big) {
		t.Fatalf("curl got %d bytes, want %d identical", len(got), len(fx.big))
	}
	// A refused name is an error for curl too (exit status ≠ 0).
	cmd = exec.CommandContext(ctx, curl, "--silent", "--max-time", "10", "-o", filepath.Join(t.TempDir(), "x"),
		"tftp://"+fx.addr+"/escape")
	if err := cmd.Run(); err == nil {
		t.Error("curl fetched the escaping symlink")
	}
}

// TestAtftpClient fetches with atftp asking blksize 1468 and tsize.
func TestAtftpClient(t *testing.T) {
	t.Parallel()
	atftp := needTool(t, "atftp")
	fx := startServer(t)
	host, port, _ := strings.Cut(fx.addr, ":")
	out := filepath.Join(t.TempDir(), "big.bin")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, atftp, "--trace", "--option", "blksize 1468", "--option", "tsize",
		"-g", "-r", "sub/big.bin", "-l", out, host, port)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("atftp: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	mustDo(t, err)
	if !bytes.Equal(got, fx.big) {
		t.Fatalf("atftp got %d bytes, want %d identical\n%s", len(got), len(fx.big), b)
	}
	// atftp --trace prints the OACK: both options acknowledged.
	oack := fmt.Sprintf("received OACK <tsize: %d, blksize: 1468,", len(fx.big))
	if !strings.Contains(string(b), oack) {
		head, _, _ := strings.Cut(string(b), "sent ACK <block: 1>")
		t.Errorf("atftp trace lacks %q:\n%s", oack, head)
	}
}

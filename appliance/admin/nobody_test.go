package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// helperEnv makes the test binary act as an admin client (TestMain): it
// calls Nodes on the socket named by the variable and prints the outcome.
const helperEnv = "SWARMBOOT_ADMIN_TEST_CLIENT"

func TestMain(m *testing.M) {
	if sock := os.Getenv(helperEnv); sock != "" {
		_, err := NewClient(sock).Nodes(context.Background())
		switch {
		case err == nil:
			fmt.Println("served")
			os.Exit(0)
		case errors.Is(err, ErrRefused):
			fmt.Println("refused:", err)
			os.Exit(3)
		default:
			fmt.Println("error:", err)
			os.Exit(4)
		}
	}
	os.Exit(m.Run())
}

const nobody = 65534

// TestRefusedAsNobody runs a real client process as uid nobody (a copy of
// this test binary started with credential switching) against a running
// admin socket: with the socket's 0600 mode the kernel refuses the
// connect; with the mode opened up (as a careless chmod would) the
// SO_PEERCRED check refuses it with 403. Root's own call is served. Needs
// root to switch users.
func TestRefusedAsNobody(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as uid nobody (TestPeerCredSocketpair covers the check without it)")
	}
	// A directory nobody can traverse, holding the socket and the binary.
	dir, err := os.MkdirTemp("", "swarmboot-admin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client.test")
	copyFile(t, self, bin)
	e := serve(t, dir)

	run := func() (string, int) {
		cmd := exec.Command(bin)
		cmd.Env = []string{helperEnv + "=" + e.sock}
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run the client as nobody: %v", err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}

	out, code := run()
	if code != 3 || !strings.Contains(out, "permission denied") || !strings.Contains(out, "run the command as root") {
		t.Errorf("nobody on the 0600 socket: exit %d, %q; want refused by the socket's mode", code, out)
	}
	if err := os.Chmod(e.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	out, code = run()
	if code != 3 || !strings.Contains(out, fmt.Sprintf("uid %d", nobody)) || !strings.Contains(out, "may not use the appliance's admin socket") {
		t.Errorf("nobody on a 0666 socket: exit %d, %q; want refused by the peer-credential check", code, out)
	}
	if l := e.logs.String(); !strings.Contains(l, `"admin call refused" path=/v1/nodes uid=`+fmt.Sprint(nobody)) {
		t.Errorf("the refusal is not logged:\n%s", l)
	}
	if _, err := e.c.Nodes(context.Background()); err != nil {
		t.Errorf("root's own call: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

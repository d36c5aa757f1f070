package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/lab"
	"github.com/swarmboot/swarmboot/pkg/netns"
)

// TestLabUpBadEnvironment runs the real `swarmboot lab up` in each bad
// environment the lab can meet — not root, no /dev/net/tun, QEMU missing,
// its forward port taken, a stale namespace from a crashed run — and
// checks the message says what is wrong and what to do, and that nothing
// is left behind (no namespace, no lab directory).
func TestLabUpBadEnvironment(t *testing.T) {
	if err := netns.Check(); err != nil {
		t.Skip(err)
	}
	for _, tool := range []string{"setpriv", "unshare", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A directory everyone may enter: the "not root" case runs as nobody.
	bin, err := os.MkdirTemp("", "swarmboot-labenv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(bin)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(bin, "swarmboot")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", exe, "../").CombinedOutput(); err != nil {
		t.Fatalf("go build swarmboot: %v\n%s", err, out)
	}
	// A PATH with what the lab's checks look for, except QEMU.
	noQEMU := filepath.Join(bin, "path")
	if err := os.Mkdir(noQEMU, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"ip", "nsenter"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not installed", tool)
		}
		if err := os.Symlink(p, filepath.Join(noQEMU, tool)); err != nil {
			t.Fatal(err)
		}
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	for _, c := range []struct {
		name string
		wrap []string // runs the command in the bad environment
		env  []string
		flag string // the --listen address
		want []string
		// stale plants a crashed lab's state (a namespace) that up must
		// remove before it fails.
		stale bool
	}{
		{name: "not root", wrap: []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"},
			want: []string{"run as root", "sudo swarmboot lab up"}},
		{name: "no tun", wrap: []string{"unshare", "--mount", "sh", "-c", `mount -t tmpfs none /dev/net && exec "$@"`, "sh"},
			want: []string{"/dev/net/tun missing", "modprobe tun"}},
		{name: "no qemu", env: []string{"PATH=" + noQEMU},
			want: []string{"qemu-system-x86_64", "apt-get install qemu-system-x86"}},
		{name: "port taken", flag: taken.Addr().String(), stale: true,
			want: []string{taken.Addr().String() + " is already in use by PID " + fmt.Sprint(os.Getpid()), "--listen 127.0.0.1:PORT"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(bin, strings.ReplaceAll(c.name, " ", "-"))
			if err := os.Mkdir(data, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(data, 0o777) // past the umask: nobody writes here
			var stale *netns.NS
			if c.stale {
				if stale, err = netns.New(ctx, lab.NSPrefix); err != nil {
					t.Fatal(err)
				}
				defer stale.Close()
				plantState(t, filepath.Join(data, "lab"), stale.Name())
			}
			before, _ := netns.List(lab.NSPrefix)
			args := append(slices.Clone(c.wrap), exe, "--data-dir", data, "lab", "up", "--agent", exe, "--listen", c.flag)
			cmd := exec.CommandContext(ctx, args[0], args[1:]...)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("lab up succeeded in a bad environment:\n%s", out)
			}
			t.Logf("%s", out)
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("message lacks %q:\n%s", w, out)
				}
			}
			after, _ := netns.List(lab.NSPrefix)
			for _, n := range after {
				if !slices.Contains(before, n) {
					t.Errorf("lab up left namespace %s behind", n)
				}
			}
			if c.stale && slices.Contains(after, stale.Name()) {
				t.Errorf("the crashed lab's namespace %s is still there", stale.Name())
			}
			if _, err := os.Stat(filepath.Join(data, "lab")); !os.IsNotExist(err) {
				t.Errorf("lab up left %s behind (%v)", filepath.Join(data, "lab"), err)
			}
		})
	}
}

// plantState writes the state file a crashed `lab up` leaves: its
// namespace, and no process still running.
func plantState(t *testing.T, dir, ns string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := fmt.Sprintf(`{"pids":[],"netns":%q,"dir":%q}`, ns, dir)
	if err := os.WriteFile(filepath.Join(dir, "lab-state.json"), []byte(st), 0o644); err != nil {
		t.Fatal(err)
	}
}

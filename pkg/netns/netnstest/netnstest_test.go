package netnstest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPairUdhcpc wires a pair, runs busybox udhcpd on the bridge in the
// server namespace and checks that Udhcpc in the client namespace gets a
// lease from its range; with no server it must report an exit error and
// a script that saw no lease.
func TestPairUdhcpc(t *testing.T) {
	Need(t, "busybox")
	srv, cli := Pair(t, "nstest", "10.77.0.1/24", "")
	const script = `echo "$1 ip=$ip" >> "$OUT"`

	seen, err := Udhcpc(t, cli, script, "-t", "1", "-T", "1")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || strings.Contains(seen, "bound") {
		t.Fatalf("without a server: err %v, script saw %q; want an exit error and no lease", err, seen)
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "udhcpd.conf")
	os.WriteFile(conf, []byte("start 10.77.0.100\nend 10.77.0.110\ninterface br0\nlease_file "+filepath.Join(dir, "leases")+"\npidfile "+filepath.Join(dir, "pid")+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "leases"), nil, 0o644)
	d := srv.Command(t.Context(), "busybox", "udhcpd", "-f", conf)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Process.Signal(syscall.SIGTERM)
		d.Wait()
	})
	seen, err = Udhcpc(t, cli, script, "-t", "5", "-T", "1") // retries while udhcpd starts
	if err != nil || !strings.Contains(seen, "bound ip=10.77.0.1") {
		t.Fatalf("with udhcpd: err %v, script saw %q; want a lease from 10.77.0.100-110", err, seen)
	}
}

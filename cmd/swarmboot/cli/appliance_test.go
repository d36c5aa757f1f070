package cli

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/bootserve/bootservetest"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

func TestApplianceRunHelpTeaches(t *testing.T) {
	t.Parallel()
	helpTeaches(t, map[string][]string{"appliance run --help": {"--simulate", "--token", "swarmboot.token=", "Examples:", "--api-addr", "--dhcp", "swarmboot events MAC",
		"admin.sock", "swarmboot token create", "swarmboot node ls", "swarmboot node revoke NAME",
		"swarmboot rotate --group G --image BUILD", "swarmboot rotate status",
		"swarmboot rotate --group workers --image worker-2027q1\n"}})
}

// TestApplianceRunSimulated runs the command on loopback against a
// simulated vCenter: the site's PXE VM gets a token on its kernel line,
// and the token is printed nowhere.
func TestApplianceRunSimulated(t *testing.T) {
	dir := t.TempDir()
	site := "datacenter: DC0\ndatastore: LocalDS_0\nnetwork: VM Network\ngroups:\n" +
		"  - name: workers\n    pattern: w{n}\n    count: 1\n    role: worker\n    cpus: 1\n    memory: 512MiB\n" +
		"    disk: 1\n    boot: pxe\n    image: lab\n"
	if err := os.WriteFile(filepath.Join(dir, "lab.yml"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAppliance(t, dir, filepath.Join(dir, "data"), "--site", filepath.Join(dir, "lab.yml"), "--simulate", "--token", "all")
	stdout, stderr := a.stdout, a.stderr
	tok := a.scriptToken(t, a.tokenMAC(t, "w1"))
	time.Sleep(100 * time.Millisecond) // let the script's log lines land
	if strings.Contains(stderr.String(), tok) || strings.Contains(stdout.String(), tok) {
		t.Error("the token was printed")
	}
	if !strings.Contains(stderr.String(), "ipxe script") {
		t.Errorf("debug logs missing (capture broken?):\n%s", stderr.String())
	}
}

// testAppliance is a `swarmboot appliance run` in this test process.
type testAppliance struct {
	stdout, stderr *testlog.Buffer
	done           chan int // its exit code
	httpAddr       string
	ctx            context.Context
}

// startAppliance runs `swarmboot appliance run` on loopback (DHCP off, free
// ports, stand-in artifacts and loaders under dir, --data-dir data) with
// the extra flags, until the test ends; the test fails if it does not exit
// 0 soon after it is cancelled.
func startAppliance(t *testing.T, dir, data string, extra ...string) *testAppliance {
	t.Helper()
	art, ipxe := bootservetest.Artifacts(t, dir, "lab")
	a := &testAppliance{stdout: &testlog.Buffer{}, stderr: &testlog.Buffer{}, done: make(chan int, 1), httpAddr: bootservetest.FreeAddr(t)}
	ctx, cancel := context.WithCancel(context.Background())
	a.ctx = ctx
	args := append([]string{"--data-dir", data, "--log-level", "debug",
		"appliance", "run", "--dhcp", "off", "--server-ip", "127.0.0.1", "--http-addr", a.httpAddr,
		"--tftp-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--ipxe-dir", ipxe, "--artifacts", art}, extra...)
	go func() { a.done <- Main(ctx, args, nil, a.stdout, a.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-a.done:
			if code != 0 {
				t.Errorf("appliance exit %d after cancel: %s", code, a.stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("appliance run did not stop on cancel")
		}
	})
	return a
}

// waitLog waits until the appliance's log matches re and returns the
// match and its groups; the test fails after 20 s, or when the appliance
// exits first.
func (a *testAppliance) waitLog(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m := re.FindStringSubmatch(a.stderr.String()); m != nil {
			return m
		}
		if len(a.done) > 0 || time.Now().After(deadline) {
			t.Fatalf("the appliance's log never showed /%s/:\n%s", re, a.stderr.String())
		}
	}
}

// tokenMAC waits until the appliance has issued vm's enrollment token
// and returns the MAC it is for.
func (a *testAppliance) tokenMAC(t *testing.T, vm string) string {
	t.Helper()
	return a.waitLog(t, regexp.MustCompile(`enrollment token for `+regexp.QuoteMeta(vm)+` \(([0-9a-f:]{17})\)`))[1]
}

// apiURL waits until the appliance logs its agent API and returns its URL.
func (a *testAppliance) apiURL(t *testing.T) string {
	t.Helper()
	return a.waitLog(t, regexp.MustCompile(`agent API (https://127\.0\.0\.1:\d+),`))[1]
}

// scriptToken fetches mac's iPXE script from the appliance and returns
// the enrollment token on its kernel line.
func (a *testAppliance) scriptToken(t *testing.T, mac string) string {
	t.Helper()
	resp, err := http.Get("http://" + a.httpAddr + "/boot/" + mac + ".ipxe")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`swarmboot\.token=(\S+)`).FindSubmatch(script)
	if m == nil {
		t.Fatalf("the script of %s has no token:\n%s", mac, script)
	}
	return string(m[1])
}

// heartbeat runs beat every 50 ms until the test ends: an agent's loop,
// played by the test.
func heartbeat(t *testing.T, beat func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			beat(ctx)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

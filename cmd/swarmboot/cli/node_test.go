package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// runCLI is Main with a data dir; it returns the exit code, stdout, stderr.
func runCLI(t *testing.T, data string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), append([]string{"--data-dir", data}, args...), nil, &out, &errb)
	return code, out.String(), errb.String()
}

func TestNodeHelpTeaches(t *testing.T) {
	t.Parallel()
	helpTeaches(t, map[string][]string{
		"node ls --help":      {"Examples:", "swarmboot node ls", "IMAGE", "NAME@digest", "LAST SEEN", "--json", "admin.sock"},
		"node revoke --help":  {"Examples:", "swarmboot node revoke worker-07", "403", "token create", "out of the Docker", "docker node rm --force ID", "worker-07: swarm node k3q5x9y2a1b0 removed"},
		"token create --help": {"Examples:", "admin.sock", "same either way"},
	})
}

// helpTeaches runs each command line (its --help) and checks that it
// exits 0 and that its output has every wanted string.
func helpTeaches(t *testing.T, wants map[string][]string) {
	t.Helper()
	for args, want := range wants {
		var out bytes.Buffer
		if code := Main(context.Background(), strings.Fields(args), nil, &out, &out); code != 0 {
			t.Fatalf("%s: exit %d: %s", args, code, out.String())
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s lacks %q", args, w)
			}
		}
	}
}

// TestNodeOffline: with no appliance running, node ls and revoke work on
// the store directly, and say clearly what is wrong when they cannot.
func TestNodeOffline(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	if code, _, errs := runCLI(t, data, "node", "ls"); code == 0 || !strings.Contains(errs, "the appliance is not running") || !strings.Contains(errs, "no store") {
		t.Errorf("node ls without a store: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("node ls created the data dir: %v", err)
	}
	st, err := store.Open(store.DefaultPath(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(tx *store.Tx) error {
		return tx.PutNode(store.Node{Name: "w1", MACs: []string{"52:54:00:00:00:31"}, Role: "worker", CertSerial: "1f", KeyFingerprint: "k1", Enrolled: time.Now(), SwarmNodeID: "s31"})
	}); err != nil {
		t.Fatal(err)
	}
	// While something else holds the store, and no appliance answers.
	code, _, errs := runCLI(t, data, "node", "revoke", "w1")
	if code == 0 || !strings.Contains(errs, "the appliance is not running") || !strings.Contains(errs, "in use by another swarmboot process") {
		t.Errorf("revoke with the store locked: exit %d, %q", code, errs)
	}
	st.Close()

	if code, _, errs := runCLI(t, data, "node", "revoke", "ghost"); code == 0 || !strings.Contains(errs, "no node ghost: see swarmboot node ls") {
		t.Errorf("revoke ghost: exit %d, %q", code, errs)
	}
	if code, out, errs := runCLI(t, data, "token", "create", "--mac", "52:54:00:00:00:32", "--kernel-line"); code == 0 || out != "" || !strings.Contains(errs, "needs the running appliance") {
		t.Errorf("token create --kernel-line offline: exit %d, %q, %q", code, out, errs)
	}
	code, out, errs := runCLI(t, data, "node", "revoke", "w1")
	if code != 0 || !strings.Contains(out, "node w1 revoked at ") ||
		!strings.Contains(out, "\nw1: swarm node s31 stays in the swarm (the appliance is not running, so no manager was asked); remove it on a manager: docker node rm --force s31\n") {
		t.Fatalf("offline revoke: exit %d, %q, %q", code, out, errs)
	}
	code, out, _ = runCLI(t, data, "node", "ls")
	if code != 0 || !regexp.MustCompile(`(?m)^NAME +VM +MAC +ROLE +IMAGE +ENROLLED +LAST SEEN +REVOKED +SWARM$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^w1 +- +52:54:00:00:00:31 +worker +- +\S+ \S+Z +- +\S+ \S+Z +no report$`).MatchString(out) {
		t.Errorf("node ls after revoke: exit %d:\n%s", code, out)
	}
	if code, out, _ := runCLI(t, data, "node", "revoke", "w1"); code != 0 || !strings.Contains(out, "already revoked") {
		t.Errorf("second revoke: exit %d, %q", code, out)
	}
}

// TestAdminAgainstRunningAppliance runs `swarmboot appliance run` and,
// while it holds the store, uses token create (the token enrolls a
// machine through the agent API), node ls and node revoke (the node's
// mTLS heartbeat is then refused).
func TestAdminAgainstRunningAppliance(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	a := startAppliance(t, dir, data)
	stdout, stderr, done, httpAddr, ctx := a.stdout, a.stderr, a.done, a.httpAddr, a.ctx
	apiURL := a.apiURL(t)
	for deadline := time.Now().Add(20 * time.Second); admin.NewClient(admin.SocketPath(data)).Ping(ctx) != nil; time.Sleep(50 * time.Millisecond) {
		if len(done) > 0 || time.Now().After(deadline) {
			t.Fatalf("the appliance did not come up with its admin socket:\n%s", stderr.String())
		}
	}

	const mac = "52:54:00:c1:00:01"
	code, out, errs := runCLI(t, data, "token", "create", "--mac", mac, "--ttl", "10m")
	if code != 0 {
		t.Fatalf("token create while the appliance runs: exit %d: %s", code, errs)
	}
	tok := strings.TrimSpace(out)
	caPEM, err := os.ReadFile(filepath.Join(data, "ca", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cl, _, resp := enrolltest.Enroll(t, apiURL, caPEM, tok, "00000000-0000-0000-0000-0000000000c1", mac)
	rep := api.Report{ImageVersion: "lab@0123456789ab", Swarm: api.SwarmState{State: "inactive"}, Docker: api.DockerState{Reachable: true}}
	if err := cl.Report(ctx, rep); err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^` + resp.Node + ` +- +` + mac + ` +worker +lab@0123456789ab +\S+ \S+ +(\S+ \S+|-) +- +(\S+)`)
	if out, ok := nodeLsUntil(t, data, func(out string) bool {
		m := row.FindStringSubmatch(out)
		return m != nil && m[2] == "inactive"
	}); !ok {
		t.Fatalf("node ls: want %s not revoked with its report and image:\n%s", resp.Node, out)
	}

	code, out, errs = runCLI(t, data, "node", "revoke", resp.Node)
	if code != 0 || !strings.Contains(out, "node "+resp.Node+" revoked at ") ||
		!strings.Contains(out, "\n"+resp.Node+": it never reported a swarm node ID: nothing to remove from the swarm\n") {
		t.Fatalf("node revoke: exit %d, %q, %q", code, out, errs)
	}
	if err := cl.Report(ctx, rep); !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "certificate revoked") {
		t.Fatalf("heartbeat after node revoke: %v, want refused (certificate revoked)", err)
	}
	code, out, _ = runCLI(t, data, "node", "ls", "--json")
	var nodes []admin.Node
	if err := jsonUnmarshal(out, &nodes); code != 0 || err != nil || len(nodes) != 1 || nodes[0].Revoked.IsZero() {
		t.Errorf("node ls --json after revoke: exit %d, %v:\n%s", code, err, out)
	}
	if code, _, errs := runCLI(t, data, "node", "revoke", "ghost"); code == 0 || !strings.Contains(errs, "no node ghost: see swarmboot node ls") {
		t.Errorf("revoke ghost: exit %d, %q", code, errs)
	}
	// A netbooted machine's token on its iPXE kernel line, from the CLI.
	const bare = "52:54:00:c1:00:02"
	code, out, errs = runCLI(t, data, "token", "create", "--mac", bare, "--kernel-line")
	kl := strings.TrimSpace(out)
	if code != 0 || len(kl) < 40 || !strings.Contains(errs, "on the iPXE kernel line of "+bare) {
		t.Fatalf("token create --kernel-line: exit %d, %q, %q", code, out, errs)
	}
	hr, err := http.Get("http://" + httpAddr + "/boot/" + bare + ".ipxe")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	if !strings.Contains(string(script), "swarmboot.token="+kl) {
		t.Errorf("the script of %s lacks the token token create --kernel-line printed:\n%s", bare, script)
	}
	if strings.Contains(stderr.String(), tok) || strings.Contains(stdout.String(), tok) || strings.Contains(stderr.String(), kl) {
		t.Error("the appliance printed the token")
	} else if !strings.Contains(stderr.String(), "enrollment token created") {
		t.Errorf("the appliance did not log the admin call (capture broken?):\n%s", stderr.String())
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// nodeLsUntil runs swarmboot node ls (with args) until ok accepts its
// output, for up to 10 s: heartbeats reach the store, which node ls
// reads, about once a second. It returns the last output (stderr too on
// a failed run) and whether ok accepted it.
func nodeLsUntil(t *testing.T, data string, ok func(out string) bool, args ...string) (string, bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, out, errs := runCLI(t, data, append([]string{"node", "ls"}, args...)...)
		if code == 0 && ok(out) {
			return out, true
		}
		if time.Now().After(deadline) {
			return out + errs, false
		}
	}
}

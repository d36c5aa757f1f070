package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

func TestRotateHelpTeaches(t *testing.T) {
	t.Parallel()
	helpTeaches(t, map[string][]string{
		"rotate --help":        {"Examples:", "swarmboot rotate --group workers --image worker-2027q1", "--dry-run", "drain", "stays drained", "--allow-quorum-loss", "pxe", "CD-ROM", "rotate status", "Exit status"},
		"rotate status --help": {"Examples:", "interrupted", "--json"},
	})
}

func TestRotateRequestFromFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sitePath := filepath.Join(dir, "site.yml")
	site := "datacenter: DC0\ndatastore: LocalDS_0\nnetwork: VM Network\ngroups:\n" +
		"  - name: managers\n    pattern: m{n}\n    count: 1\n    role: manager\n    boot: iso\n    image: docker.iso\n" +
		"  - name: workers\n    pattern: w{n}\n    count: 2\n    boot: pxe\n    image: worker-2027q1\n" +
		"  - name: edge\n    pattern: e{n}\n    count: 1\n    boot: iso\n    image: edge-2027q1\n"
	if err := os.WriteFile(sitePath, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	g := &Globals{Stderr: &errb}
	req, err := rotateRequest(g, nil, "", sitePath)
	if err != nil || len(req.Groups) != 2 || req.Groups[0] != (admin.RotateGroup{Group: "workers", Image: "worker-2027q1"}) ||
		req.Groups[1] != (admin.RotateGroup{Group: "edge", Image: "edge-2027q1"}) {
		t.Fatalf("--site: %+v, %v", req, err)
	}
	if !strings.Contains(errb.String(), "skipping group managers") || !strings.Contains(errb.String(), "docker.iso is a file, not a build") {
		t.Errorf("the iso group with an ISO file was not said to be skipped: %q", errb.String())
	}
	req, err = rotateRequest(g, []string{"workers", "edge=edge-2"}, "worker-2", "")
	if err != nil || len(req.Groups) != 2 || req.Groups[0].Image != "worker-2" || req.Groups[1] != (admin.RotateGroup{Group: "edge", Image: "edge-2"}) {
		t.Errorf("--group forms: %+v, %v", req, err)
	}
	for _, tc := range []struct {
		groups      []string
		image, site string
		want        string
	}{
		{nil, "", "", "name what to roll"},
		{[]string{"workers"}, "", "", "--group workers --image BUILD"},
		{[]string{"workers"}, "x", sitePath, "not both"},
	} {
		if _, err := rotateRequest(g, tc.groups, tc.image, tc.site); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %q %q: %v, want %q", tc.groups, tc.image, tc.site, err, tc.want)
		}
	}
}

// TestRotateOffline: without a running appliance a roll is refused with
// what to do, and status reads the store.
func TestRotateOffline(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	if code, _, errs := runCLI(t, data, "rotate", "--group", "workers", "--image", "w2"); code != 1 || !strings.Contains(errs, "needs the running appliance") || !strings.Contains(errs, "appliance run") {
		t.Errorf("rotate without an appliance: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI(t, data, "rotate", "status"); code != 1 || !strings.Contains(errs, "no appliance has run") {
		t.Errorf("status without a store: exit %d, %q", code, errs)
	}
	st, err := store.Open(store.DefaultPath(data))
	if err != nil {
		t.Fatal(err)
	}
	rot := store.Rotation{ID: "r", State: store.RotationRunning, Started: time.Now(),
		Groups: []store.RotationGroup{{Name: "workers", Image: "w2", Version: "w2@bbbbbbbbbbbb"}},
		Nodes: []store.RotationNode{{VM: "w1", Group: "workers", Role: "worker", From: "w1@aaaaaaaaaaaa", To: "w2@bbbbbbbbbbbb", Step: "done"},
			{VM: "w2", Group: "workers", Role: "worker", From: "w1@aaaaaaaaaaaa", To: "w2@bbbbbbbbbbbb", Step: "boot", Drained: true}}}
	if err := st.Update(func(tx *store.Tx) error { return tx.PutRotation(rot) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errs := runCLI(t, data, "rotate", "status")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	for _, w := range []string{"workers → w2 (w2@bbbbbbbbbbbb)", "no appliance runs it: interrupted", "w2 ", "boot", "drained"} {
		if !strings.Contains(out, w) {
			t.Errorf("status lacks %q:\n%s", w, out)
		}
	}
	code, out, _ = runCLI(t, data, "rotate", "status", "--json")
	var resp admin.RotationResponse
	if err := json.Unmarshal([]byte(out), &resp); code != 0 || err != nil || resp.Rotation == nil || len(resp.Rotation.Nodes) != 2 {
		t.Errorf("status --json: exit %d, %v: %s", code, err, out)
	}
}

// managerAgent plays the agent of the swarm's only manager: it heartbeats
// through the real agent API, pushes the join tokens and node list, and
// does the node operations the appliance hands it. reboot takes it away
// for a moment and brings it back on another image version.
type managerAgent struct {
	mu      sync.Mutex
	version string
	avail   string
	up      bool
	results []api.NodeOpResult
	ops     []string
}

const mgrID = "m1nodeid000000000000000000"

func (m *managerAgent) report() api.Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	rep := api.Report{ImageVersion: m.version, Docker: api.DockerState{Reachable: true},
		Swarm: api.SwarmState{State: "active", NodeID: mgrID, Role: api.RoleManager, ClusterID: "c1", ControlAvailable: true},
		JoinTokens: &api.ManagerPush{ClusterID: "c1", Worker: "SWMTKN-1-test-w", Manager: "SWMTKN-1-test-m", Managers: []string{"127.0.0.1:2377"},
			NodeIDs: []string{mgrID}, Nodes: []api.SwarmNode{{ID: mgrID, Hostname: "m1", Role: api.RoleManager, State: api.NodeReady,
				Availability: m.avail, Leader: true}}},
		OpResults: m.results}
	m.results = nil
	return rep
}

func (m *managerAgent) do(ops []api.NodeOp) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range ops {
		m.ops = append(m.ops, op.Do)
		switch op.Do {
		case api.OpDrain:
			m.avail = api.AvailabilityDrain
		case api.OpActivate:
			m.avail = api.AvailabilityActive
		}
		m.results = append(m.results, api.NodeOpResult{ID: op.ID})
	}
}

func (m *managerAgent) reboot(version string) {
	m.mu.Lock()
	m.up = false
	m.mu.Unlock()
	time.AfterFunc(300*time.Millisecond, func() {
		m.mu.Lock()
		m.version, m.up = version, true
		m.mu.Unlock()
	})
}

// rebootOnReset is rotate's stdout: when the roll says it reset m1, the
// machine "reboots" into the new image.
type rebootOnReset struct {
	mu  sync.Mutex
	buf bytes.Buffer
	m   *managerAgent
}

func (w *rebootOnReset) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if strings.Contains(string(p), " m1 reset: ") {
		w.m.reboot("lab2@bbbbbbbbbbbb")
	}
	return w.buf.Write(p)
}

// TestRotateAgainstApplianceRun rolls the single manager of a simulated
// site through a real `swarmboot appliance run`: its agent (played here)
// enrolls with the kernel-line token, pushes the swarm, and does the drain
// and activate the appliance hands it; rotate refuses the quorum loss
// unless told, then drains, points the VM at lab2, resets it (in the
// simulated vCenter), waits for lab2 and activates it; status and node ls
// show the outcome.
func TestRotateAgainstApplianceRun(t *testing.T) { rollSingleManager(t, "pxe") }

// TestRotateISOAgainstApplianceRun is the same roll for an iso-boot
// manager: lab2.iso is pushed to the simulated datastore and put in the
// VM's CD-ROM, and the store records its datastore path.
func TestRotateISOAgainstApplianceRun(t *testing.T) { rollSingleManager(t, "iso") }

func rollSingleManager(t *testing.T, boot string) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	site := "datacenter: DC0\ndatastore: LocalDS_0\nnetwork: VM Network\ngroups:\n" +
		"  - name: managers\n    pattern: m{n}\n    count: 1\n    role: manager\n    cpus: 1\n    memory: 512MiB\n" +
		"    disk: 1\n    boot: " + boot + "\n    image: lab\n"
	if err := os.WriteFile(filepath.Join(dir, "lab.yml"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(dir, "out")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	for img, v := range map[string]string{"lab": "lab@aaaaaaaaaaaa", "lab2": "lab2@bbbbbbbbbbbb"} {
		os.WriteFile(filepath.Join(art, img+".version"), []byte(v+"\n"), 0o644)
		os.WriteFile(filepath.Join(art, img+".iso"), []byte("ISO of "+v+"\n"), 0o644)
	}
	a := startAppliance(t, dir, data, "--site", filepath.Join(dir, "lab.yml"), "--simulate", "--token", "all")
	for _, img := range []string{"lab", "lab2"} {
		for _, f := range []string{"-kernel", "-initrd.img", "-cmdline"} {
			b, err := os.ReadFile(filepath.Join(art, "lab"+f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(art, img+f), b, 0o644)
		}
	}
	mac, apiURL := a.tokenMAC(t, "m1"), a.apiURL(t)
	var tok string
	if boot == "iso" {
		// An iso VM does not netboot: its token comes another way.
		code, out, errs := runCLI(t, data, "token", "create", "--mac", mac)
		if code != 0 {
			t.Fatalf("token create: %s", errs)
		}
		tok = strings.TrimSpace(out)
	} else {
		tok = a.scriptToken(t, mac)
	}
	caPEM, err := os.ReadFile(filepath.Join(data, "ca", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cl, _, _ := enrolltest.Enroll(t, apiURL, caPEM, tok, "00000000-0000-0000-0000-0000000000e1", mac)
	agent := &managerAgent{version: "lab@aaaaaaaaaaaa", avail: api.AvailabilityActive, up: true}
	heartbeat(t, func(ctx context.Context) {
		agent.mu.Lock()
		up := agent.up
		agent.mu.Unlock()
		if up {
			if ans, err := cl.ReportOps(ctx, agent.report()); err == nil {
				agent.do(ans.Ops)
			}
		}
	})

	var code int
	var out, errs string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, out, errs = runCLI(t, data, "rotate", "--group", "managers", "--image", "lab2", "--dry-run")
		if !strings.Contains(errs, "not known yet") || time.Now().After(deadline) {
			break
		}
	}
	if code != 1 || !strings.Contains(errs, "quorum") || !strings.Contains(errs, "--allow-quorum-loss") {
		t.Fatalf("dry run of the single manager: exit %d, %q %q; want a quorum refusal", code, out, errs)
	}
	code, out, errs = runCLI(t, data, "rotate", "--group", "managers=lab2", "--allow-quorum-loss", "--dry-run")
	if code != 0 || !strings.Contains(out, "m1 (manager, leader, group managers): lab@aaaaaaaaaaaa → lab2@bbbbbbbbbbbb") {
		t.Fatalf("dry run: exit %d, %q %q", code, out, errs)
	}

	w := &rebootOnReset{m: agent}
	var errb bytes.Buffer
	code = Main(context.Background(), []string{"--data-dir", data, "rotate", "--group", "managers=lab2", "--allow-quorum-loss", "--timeout", "60s"}, nil, w, &errb)
	w.mu.Lock()
	out = w.buf.String()
	w.mu.Unlock()
	if code != 0 || !strings.Contains(out, "Roll done: 1 nodes rolled") {
		t.Fatalf("rotate: exit %d\nstdout:\n%s\nstderr:\n%s\nappliance:\n%s", code, out, errb.String(), a.stderr.String())
	}
	for _, step := range []string{" m1 drain: ", " m1 image: ", " m1 reset: ", " m1 boot: ", " m1 activate: ", " m1 done: "} {
		if !strings.Contains(out, step) {
			t.Errorf("progress lacks %q:\n%s", step, out)
		}
	}
	agent.mu.Lock()
	ops := strings.Join(agent.ops, " ")
	agent.mu.Unlock()
	if ops != "drain activate" {
		t.Errorf("the manager's agent did %q, want drain activate", ops)
	}
	if code, out, _ := runCLI(t, data, "rotate", "status"); code != 0 || !strings.Contains(out, "State: done") || !regexp.MustCompile(`m1\s+managers\s+manager\s+lab@aaaaaaaaaaaa\s+lab2@bbbbbbbbbbbb\s+done`).MatchString(out) {
		t.Errorf("status: exit %d:\n%s", code, out)
	}
	// The roll saw the new version in memory; the store has it within a
	// second.
	if out, ok := nodeLsUntil(t, data, func(out string) bool { return strings.Contains(out, `"image": "lab2@bbbbbbbbbbbb"`) }, "--json"); !ok {
		t.Errorf("node ls --json after the roll:\n%s", out)
	}
	if out, ok := nodeLsUntil(t, data, regexp.MustCompile(`(?m)^m1 +m1 +\S+ +manager +lab2@bbbbbbbbbbbb +`).MatchString); !ok {
		t.Errorf("node ls after the roll: want m1's IMAGE lab2@bbbbbbbbbbbb:\n%s", out)
	}
	if boot == "iso" {
		if !strings.Contains(out, "pushing lab2.iso to the datastore and into the CD-ROM") {
			t.Errorf("the iso roll did not push lab2.iso:\n%s", out)
		}
		// What the store records now shows as "was" in a plan back to lab.
		_, plan, errs := runCLI(t, data, "rotate", "--group", "managers=lab", "--allow-quorum-loss", "--dry-run")
		if !regexp.MustCompile(`was \[LocalDS_0\] swarmboot/lab2-[0-9a-f]+\.iso\)`).MatchString(plan) {
			t.Errorf("after the iso roll the VM does not record lab2's datastore ISO:\n%s%s", plan, errs)
		}
	} else {
		resp, err := http.Get("http://" + a.httpAddr + "/boot/" + mac + ".ipxe")
		if err != nil {
			t.Fatal(err)
		}
		script, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(script), "lab2-kernel") {
			t.Errorf("m1's script after the roll does not boot lab2:\n%s", script)
		}
	}
	if strings.Contains(a.stderr.String(), "SWMTKN") || strings.Contains(out, "SWMTKN") {
		t.Error("a join token was printed")
	}
}

// TestRollPrinter: plain lines for a pipe; on a terminal aligned lines
// with marks, and the End line left to followRoll.
func TestRollPrinter(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 6, 10, 2, 0, time.UTC)
	lines := []admin.RotateLine{{Time: at, Step: "start", Message: "1 of 1 nodes to roll"},
		{Time: at, VM: "tf-sw-1", Step: "drain", Message: "draining swarm node k3q5"},
		{Time: at, VM: "tf-sw-1", Step: "wait", Message: "still waiting for the manager"},
		{Time: at, VM: "tf-sw-1", Step: "done", Message: "on w@1, active"},
		{Time: at, Step: "end", End: true, State: store.RotationDone}}
	var plain bytes.Buffer
	p := newRollPrinter(&plain, false)
	for _, l := range lines {
		p.line(l)
	}
	p.close()
	want := "2026-11-26T06:10:02Z rotate start: 1 of 1 nodes to roll\n2026-11-26T06:10:02Z tf-sw-1 drain: draining swarm node k3q5\n" +
		"2026-11-26T06:10:02Z tf-sw-1 wait: still waiting for the manager\n2026-11-26T06:10:02Z tf-sw-1 done: on w@1, active\n"
	if plain.String() != want {
		t.Errorf("plain:\n%q\nwant\n%q", plain.String(), want)
	}
	var term bytes.Buffer
	p = newRollPrinter(&term, true)
	for _, l := range lines {
		p.line(l)
	}
	p.close()
	p.close() // twice is fine
	out := term.String()
	if !strings.Contains(out, "✓ tf-sw-1        done      on w@1, active\n") || !strings.Contains(out, "  tf-sw-1        drain     draining") ||
		strings.Contains(out, "end") || strings.Contains(out, "still waiting") || !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("terminal:\n%q", out)
	}
}

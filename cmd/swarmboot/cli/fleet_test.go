package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

// fleetRun runs the CLI with args; the logger and the progress lines both
// write to stderr, concurrently.
func fleetRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb testlog.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestApplySimulateWait(t *testing.T) {
	code, out, errs := fleetRun(t, "--data-dir", t.TempDir(), "apply", "--simulate", "--wait")
	if code != 0 {
		t.Fatalf("apply --simulate: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{`+ vm "tf-sw-m1"`, "Plan: 4 to add", "Apply complete: 4 added", "instance_ips = {", `"tf-sw-3" = "192.0.2.`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "Simulated vCenter") {
		t.Errorf("simulation not announced: %s", errs)
	}
}

// TestFleetCommandsAgainstAvCenter drives push, plan, apply and destroy
// through a site file at a (simulated) vCenter, as an operator would.
func TestFleetCommandsAgainstAvCenter(t *testing.T) {
	sim, err := vsphere.StartSim()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker.iso"), bytes.Repeat([]byte("x"), 4096), 0o644)
	siteFile := filepath.Join(dir, "swarmboot.yml")
	os.WriteFile(siteFile, []byte(fmt.Sprintf(`vcenter:
  url: %s
  user: %s
  ca: %s
datacenter: DC0
resource_pool: DC0_C0/Resources
datastore: LocalDS_0
network: VM Network
folder: TERRAFORM/Linux/linuxkit-dev
groups:
  - name: workers
    pattern: tf-sw-{n}
    count: 2
    image: docker.iso
`, sim.VCenter.URL, sim.VCenter.User, sim.VCenter.CA)), 0o600)
	t.Setenv("SWARMBOOT_VSPHERE_PASSWORD", sim.VCenter.Password)
	data := t.TempDir()
	base := []string{"--data-dir", data, "--log-level", "debug"}

	// Without a resource pool the error lists the pools that exist.
	noPool := filepath.Join(dir, "nopool.yml")
	raw, _ := os.ReadFile(siteFile)
	os.WriteFile(noPool, []byte(strings.Replace(string(raw), "resource_pool: DC0_C0/Resources\n", "", 1)), 0o600)
	code, _, errs := fleetRun(t, append(base, "plan", "--site", noPool)...)
	if code != 1 || !strings.Contains(errs, "resource_pool") || !strings.Contains(errs, "/DC0/host/DC0_C0/Resources") {
		t.Fatalf("plan without a resource pool: exit %d, %q", code, errs)
	}
	code, out, errs := fleetRun(t, append(base, "push", "--site", siteFile, filepath.Join(dir, "docker.iso"))...)
	if code != 0 || !strings.HasPrefix(out, "[LocalDS_0] swarmboot/docker-") {
		t.Fatalf("push: exit %d, %q %q", code, out, errs)
	}
	if code, _, errs = fleetRun(t, append(base, "push", "--site", siteFile, filepath.Join(dir, "docker.iso"))...); code != 0 || !strings.Contains(errs, "not uploaded") {
		t.Fatalf("second push: exit %d, %q", code, errs)
	}
	if code, out, errs = fleetRun(t, append(base, "plan", "--site", siteFile)...); code != 2 || !strings.Contains(out, "Plan: 2 to add") {
		t.Fatalf("plan before apply: exit %d (want 2)\n%s%s", code, out, errs)
	}
	if code, out, errs = fleetRun(t, append(base, "apply", "--parallel", "1", "--site", siteFile)...); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "+ image") {
		t.Errorf("apply pushed again an ISO already on the datastore:\n%s", out)
	}
	if code, out, _ = fleetRun(t, append(base, "plan", "--site", siteFile)...); code != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("plan after apply: exit %d (want 0)\n%s", code, out)
	}
	code, out, errs = fleetRun(t, append(base, "destroy", "--site", siteFile, "tf-sw-2")...)
	if code != 1 || !strings.Contains(out, `- vm "tf-sw-2"`) || !strings.Contains(errs, "--yes") {
		t.Fatalf("destroy without --yes: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs = fleetRun(t, append(base, "destroy", "--site", siteFile, "--yes", "tf-sw-2")...); code != 0 || !strings.Contains(out, "1 destroyed") {
		t.Fatalf("destroy --yes: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ = fleetRun(t, append(base, "plan", "--site", siteFile)...); code != 2 || !strings.Contains(out, `+ vm "tf-sw-2"`) {
		t.Fatalf("plan after destroy: exit %d\n%s", code, out)
	}
	t.Setenv("SWARMBOOT_VSPHERE_PASSWORD", "wrong")
	code, _, errs = fleetRun(t, append(base, "plan", "--site", siteFile)...)
	if code != 1 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "rejected") {
		t.Fatalf("wrong password: exit %d, stderr %q (want one line)", code, errs)
	}
}

// swarmManager plays the agent of a swarm's only manager m1 with one
// worker w1: its push lists both (w1's tasks counted), and it does the node
// operations the appliance hands it, recording them in order.
type swarmManager struct {
	mu      sync.Mutex
	w1avail string
	w1tasks int // tasks still on w1: 2 once drained, one fewer per push
	w1gone  bool
	results []api.NodeOpResult
	ops     []string
}

const w1ID = "w1nodeid000000000000000000"

func (m *swarmManager) report() api.Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	nodes := []api.SwarmNode{{ID: mgrID, Hostname: "m1", Role: api.RoleManager, State: api.NodeReady, Availability: api.AvailabilityActive, Leader: true, TasksKnown: true}}
	ids := []string{mgrID}
	if !m.w1gone {
		nodes = append(nodes, api.SwarmNode{ID: w1ID, Hostname: "w1", Role: api.RoleWorker, State: api.NodeReady, Availability: m.w1avail, Tasks: m.w1tasks, TasksKnown: true})
		if m.w1tasks > 0 {
			m.w1tasks--
		}
		ids = append(ids, w1ID)
	}
	rep := api.Report{ImageVersion: "lab@aaaaaaaaaaaa", Docker: api.DockerState{Reachable: true},
		Swarm: api.SwarmState{State: "active", NodeID: mgrID, Role: api.RoleManager, ClusterID: "c1", ControlAvailable: true},
		JoinTokens: &api.ManagerPush{ClusterID: "c1", Worker: "SWMTKN-1-test-w", Manager: "SWMTKN-1-test-m", Managers: []string{"127.0.0.1:2377"},
			NodeIDs: ids, Nodes: nodes},
		OpResults: m.results}
	m.results = nil
	return rep
}

func (m *swarmManager) do(ops []api.NodeOp) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range ops {
		m.ops = append(m.ops, op.Do+" "+op.Node)
		switch {
		case op.Node == w1ID && op.Do == api.OpDrain:
			m.w1avail, m.w1tasks = api.AvailabilityDrain, 2
		case op.Node == w1ID && op.Do == api.OpRemoveForce:
			m.w1gone = true
		}
		m.results = append(m.results, api.NodeOpResult{ID: op.ID})
	}
}

// TestDestroyThroughRunningAppliance destroys a simulated site's manager
// and worker through a real `swarmboot appliance run`: both agents (played
// here) enroll and report their swarm nodes; destroy refuses to take the
// last manager while the worker stays, then, with the worker, drains w1
// through m1's agent, deletes both VMs from the simulated vCenter, has
// w1's swarm node removed (force) and revokes both nodes.
func TestDestroyThroughRunningAppliance(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	site := "datacenter: DC0\ndatastore: LocalDS_0\nnetwork: VM Network\ngroups:\n" +
		"  - name: managers\n    pattern: m{n}\n    count: 1\n    role: manager\n    cpus: 1\n    memory: 512MiB\n    disk: 1\n    boot: pxe\n    image: lab\n" +
		"  - name: workers\n    pattern: w{n}\n    count: 1\n    role: worker\n    cpus: 1\n    memory: 512MiB\n    disk: 1\n    boot: pxe\n    image: lab\n"
	if err := os.WriteFile(filepath.Join(dir, "lab.yml"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAppliance(t, dir, data, "--site", filepath.Join(dir, "lab.yml"), "--simulate", "--token", "all")
	macs := map[string]string{"m1": a.tokenMAC(t, "m1"), "w1": a.tokenMAC(t, "w1")}
	apiURL := a.apiURL(t)
	a.waitLog(t, regexp.MustCompile(`site applied`))
	caPEM, err := os.ReadFile(filepath.Join(data, "ca", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	enroll := func(vm, uuid string) *agent.Client {
		cl, _, _ := enrolltest.Enroll(t, apiURL, caPEM, a.scriptToken(t, macs[vm]), uuid, macs[vm])
		return cl
	}
	mcl := enroll("m1", "00000000-0000-0000-0000-0000000000e1")
	wcl := enroll("w1", "00000000-0000-0000-0000-0000000000e2")
	mgr := &swarmManager{w1avail: api.AvailabilityActive}
	heartbeat(t, func(ctx context.Context) {
		if ans, err := mcl.ReportOps(ctx, mgr.report()); err == nil {
			mgr.do(ans.Ops)
		}
	})
	heartbeat(t, func(ctx context.Context) {
		wcl.ReportOps(ctx, api.Report{ImageVersion: "lab@aaaaaaaaaaaa", Docker: api.DockerState{Reachable: true},
			Swarm: api.SwarmState{State: "active", NodeID: w1ID, Role: api.RoleWorker, ClusterID: "c1"}})
	})
	if out, ok := nodeLsUntil(t, data, func(out string) bool {
		return strings.Contains(out, mgrID[:12]) && strings.Contains(out, w1ID[:12])
	}); !ok {
		t.Fatalf("node ls never showed both swarm nodes:\n%s", out)
	}

	code, out, errs := runCLI(t, data, "destroy", "--group", "managers", "--dry-run")
	if code != 1 || !strings.Contains(errs, "last manager") || !strings.Contains(errs, "w1") || !strings.Contains(errs, "--force") {
		t.Fatalf("destroy of the last manager with a worker left: exit %d, %q %q; want a refusal naming w1 and --force", code, out, errs)
	}
	code, out, errs = runCLI(t, data, "destroy", "--dry-run")
	if code != 0 || !strings.Contains(out, "swarm node "+w1ID+" is drained, then removed") || !strings.Contains(out, "last manager") ||
		strings.Index(out, `"w1"`) > strings.Index(out, `"m1"`) {
		t.Fatalf("dry run: exit %d, %q %q; want w1 drained and removed before m1, the last manager", code, out, errs)
	}
	code, out, errs = runCLI(t, data, "destroy", "--yes")
	if code != 0 {
		t.Fatalf("destroy --yes: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"w1 drain: swarm node " + w1ID + " drained, no tasks left (2 when drained; ", "w1 delete: VM powered off and deleted",
		"w1 revoke: certificate revoked; swarm node " + w1ID + " removed", "m1 revoke: certificate revoked", "Destroy complete: 2 of 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("destroy output lacks %q:\n%s", want, out)
		}
	}
	// m1 was the last manager: its certificate is revoked, and nothing
	// claims its swarm node stays (the swarm went with it).
	if strings.Contains(a.stderr.String(), "stays in the swarm") {
		t.Errorf("the appliance says a swarm node stays after destroying the whole swarm:\n%s", a.stderr.String())
	}
	mgr.mu.Lock()
	ops := strings.Join(mgr.ops, ", ")
	mgr.mu.Unlock()
	if ops != "drain "+w1ID+", remove-force "+w1ID {
		t.Errorf("the manager's agent did %q, want w1's drain then its forced removal", ops)
	}
	// The simulated vCenter lists no VM of ours any more.
	if code, out, errs = runCLI(t, data, "destroy", "--dry-run"); code != 0 || !strings.Contains(out, "Nothing to destroy") {
		t.Errorf("destroy after destroy: exit %d, %q %q; want nothing left in vCenter", code, out, errs)
	}
	code, out, _ = runCLI(t, data, "node", "ls", "--json")
	var nodes []admin.Node
	if err := json.Unmarshal([]byte(out), &nodes); code != 0 || err != nil || len(nodes) != 2 {
		t.Fatalf("node ls --json: exit %d, %v: %s", code, err, out)
	}
	for _, n := range nodes {
		if n.Revoked.IsZero() {
			t.Errorf("node %s not revoked after its VM was destroyed", n.Name)
		}
	}
}

// TestDestroyOfflineSaysWhatStays destroys with no appliance running: the
// VMs go, the swarm nodes stay (nobody to ask) and destroy prints the
// docker node rm --force to run for each; the certificates are revoked in
// the store; the last manager is refused while its worker stays.
func TestDestroyOfflineSaysWhatStays(t *testing.T) {
	data := t.TempDir()
	site := filepath.Join(t.TempDir(), "s.yml")
	os.WriteFile(site, []byte(`datacenter: DC0
datastore: LocalDS_0
network: VM Network
folder: sb
groups:
  - name: managers
    pattern: m{n}
    count: 1
    role: manager
    boot: pxe
  - name: workers
    pattern: w{n}
    count: 2
    boot: pxe
`), 0o644)
	// --simulate keeps its store in a temporary data dir: give the
	// nodes through a store the test fills, against a simulator it starts.
	sim, err := vsphere.StartSim()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	raw, _ := os.ReadFile(site)
	os.WriteFile(site, []byte(fmt.Sprintf("vcenter:\n  url: %s\n  user: %s\n  ca: %s\nresource_pool: DC0_C0/Resources\n", sim.VCenter.URL, sim.VCenter.User, sim.VCenter.CA)+string(raw)), 0o600)
	t.Setenv("SWARMBOOT_VSPHERE_PASSWORD", sim.VCenter.Password)
	base := []string{"--data-dir", data}
	if code, out, errs := fleetRun(t, append(base, "apply", "--parallel", "1", "--site", site)...); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errs)
	}
	st, err := store.Open(store.DefaultPath(data))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"m1": "m1offline00000000000000000", "w1": "w1offline00000000000000000", "w2": ""}
	err = st.Update(func(tx *store.Tx) error {
		for vm, id := range ids {
			role := api.RoleWorker
			if vm == "m1" {
				role = api.RoleManager
			}
			rep, _ := json.Marshal(api.Report{Swarm: api.SwarmState{State: "active", NodeID: id, Role: role}})
			if id == "" {
				rep = nil
			}
			if err := tx.PutNode(store.Node{Name: vm, VM: vm, Role: role, CertSerial: "0" + fmt.Sprint(len(vm)) + vm[1:], MACs: []string{}, LastReport: rep, SwarmNodeID: id}); err != nil {
				return err
			}
		}
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := fleetRun(t, append(base, "destroy", "--parallel", "1", "--site", site, "--group", "managers", "--yes")...)
	if code != 1 || !strings.Contains(errs, "last manager") || !strings.Contains(errs, "w1") || strings.Contains(out, "destroyed") {
		t.Fatalf("offline destroy of the last manager: exit %d, %q %q; want a refusal", code, out, errs)
	}
	code, out, errs = fleetRun(t, append(base, "destroy", "--parallel", "1", "--site", site, "--dry-run", "--group", "workers")...)
	if code != 0 || !strings.Contains(out, "run docker node rm --force "+ids["w1"]+" on a manager") || !strings.Contains(out, "w2\" (group workers, poweredOn): power off and delete; node w2 never reported a swarm node") {
		t.Fatalf("offline dry run: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = fleetRun(t, append(base, "destroy", "--parallel", "1", "--site", site, "--yes", "--group", "workers")...)
	if code != 0 || !strings.Contains(out, "w1: certificate of node w1 revoked; swarm node "+ids["w1"]+" stays in the swarm (listed down): run on a manager: docker node rm --force "+ids["w1"]) ||
		!strings.Contains(out, "w2: certificate of node w2 revoked") || !strings.Contains(out, "2 destroyed") {
		t.Fatalf("offline destroy: exit %d\n%s%s", code, out, errs)
	}
	st, err = store.Open(store.DefaultPath(data))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.View(func(tx *store.Tx) error {
		for vm := range ids {
			n, err := tx.Node(vm)
			if err != nil {
				t.Fatal(err)
			}
			if revoked := !n.Revoked.IsZero(); revoked != (vm != "m1") {
				t.Errorf("node %s: revoked %v after destroying the workers", vm, revoked)
			}
		}
		return nil
	})
}

func TestDestroyHelpTeaches(t *testing.T) {
	helpTeaches(t, map[string][]string{
		"destroy --help": {"--dry-run", "--force", "--drain-timeout", "workers first", "last manager", "docker node rm --force", "admin.sock", "Example:"},
	})
}

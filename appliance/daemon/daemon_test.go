package daemon

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/bootservetest"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

const labSite = `datacenter: DC0
datastore: LocalDS_0
network: VM Network
folder: swarmboot/lab
groups:
  - name: managers
    pattern: lab-m{n}
    count: 1
    role: manager
    cpus: 1
    memory: 512MiB
    disk: 1
    boot: pxe
    image: lab
`

// fixture makes a data dir (not created), an artifacts dir with image
// "lab" and a directory of stand-in iPXE loaders.
func fixture(t testing.TB) (data, artifacts, ipxe string) {
	t.Helper()
	root := t.TempDir()
	artifacts, ipxe = bootservetest.Artifacts(t, root, "lab")
	return filepath.Join(root, "data"), artifacts, ipxe
}

// start runs a daemon on loopback and stops it when the test ends.
func start(t *testing.T, cfg Config) *Daemon {
	t.Helper()
	return startIn(t, cfg, func(f func() error) error { return f() })
}

// startIn is start with New and Listen run through do, such as
// netns.NS.Do (so the daemon's sockets open inside a namespace).
func startIn(t *testing.T, cfg Config, do func(func() error) error) *Daemon {
	t.Helper()
	var d *Daemon
	err := do(func() (err error) {
		if d, err = New(cfg); err != nil {
			return err
		}
		if err := d.Listen(); err != nil {
			d.Close()
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			d.Close()
		case <-time.After(30 * time.Second):
			t.Error("Run did not return 30 s after its context ended")
		}
	})
	return d
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b)
	}
	return string(b)
}

// storeKinds is mac's event kinds in the store.
func storeKinds(t *testing.T, st *store.Store, mac string) []timeline.Event {
	t.Helper()
	var evs []store.Event
	if err := st.View(func(tx *store.Tx) error {
		var err error
		evs, err = tx.Events(mac)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out := make([]timeline.Event, len(evs))
	for i, e := range evs {
		out[i] = timeline.Event{Time: e.Time, Kind: timeline.Kind(e.Kind), Detail: e.Detail}
	}
	return out
}

// waitStore waits until mac's store events hold want in order.
func waitStore(t *testing.T, st *store.Store, mac string, want ...timeline.Kind) []timeline.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := storeKinds(t, st, mac)
		missing, ok := timeline.InOrder(evs, want...)
		if ok {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("store events of %s: %q missing from %v (want %v in order)", mac, missing, timeline.Kinds(evs), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var kernelLine = regexp.MustCompile(`(?m)^kernel (\S+) (.*)$`)
var initrdLine = regexp.MustCompile(`(?m)^initrd --name \S+ (\S+)$`)

// TestApplianceLoopback wires the whole appliance on loopback: a simulated
// vCenter records a PXE VM, a token reaches its iPXE kernel line (and
// nothing else), the machine fetches script, kernel and initrd, enrolls
// with that token, founds the swarm, and its history is in the store and
// on the timeline in order.
func TestApplianceLoopback(t *testing.T) {
	data, artifacts, ipxe := fixture(t)
	sitePath := filepath.Join(t.TempDir(), "swarmboot.yml")
	s, err := site.Parse(sitePath, []byte(labSite), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	apiLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	d := start(t, Config{
		DataDir: data, Artifacts: artifacts, TrustInitrd: true,
		Boot: bootserve.Config{DHCP: dhcp.ModeOff, ServerIP: net.IPv4(127, 0, 0, 1), IPXEDir: ipxe,
			HTTPAddr: bootservetest.FreeAddr(t), TFTPAddr: "127.0.0.1:0"},
		APIListener: apiLn, Site: s, Simulate: true, MirrorEvery: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	<-d.Applied()
	if err := d.ApplyErr(); err != nil {
		t.Fatalf("apply on the simulator: %v", err)
	}
	var vms []store.VM
	if err := d.Store().View(func(tx *store.Tx) error { vms, err = tx.VMs(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(vms) != 1 || vms[0].MAC == "" || vms[0].Image != "lab" {
		t.Fatalf("store VMs after apply: %+v, want one VM lab-m1 with a MAC and image lab", vms)
	}
	vm := vms[0]
	mac := vm.MAC

	// Before a token: the VM boots its image, with no token.
	script := get(t, d.HTTPBase()+"/boot/"+mac+".ipxe")
	if strings.Contains(script, TokenArg) {
		t.Fatalf("script before IssueToken carries a token:\n%s", script)
	}

	tok, err := d.IssueToken(vm.Name, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	script = get(t, d.HTTPBase()+"/boot/"+mac+".ipxe")
	k := kernelLine.FindStringSubmatch(script)
	if k == nil || !strings.Contains(" "+k[2]+" ", " "+TokenArg+"="+tok+" ") || !strings.Contains(k[2], "console=ttyS0 quiet") {
		t.Fatalf("kernel line does not carry the image's command line and the token:\n%s", script)
	}
	get(t, k[1]) // the kernel
	rds := initrdLine.FindAllStringSubmatch(script, -1)
	if len(rds) != 2 || !strings.Contains(rds[1][1], TrustInitrdName) {
		t.Fatalf("want the image's initrd and the trust initrd, got:\n%s", script)
	}
	for _, rd := range rds {
		get(t, rd[1])
	}
	waitStore(t, d.Store(), mac, timeline.VMCreated, timeline.Token, timeline.Script, timeline.Kernel, timeline.Initrd)

	// Enroll through the agent API with the agent's own client code.
	const uuid = "00000000-0000-0000-0000-000000000001"
	cl, _, resp := enrolltest.Enroll(t, d.APIURL(), d.CAPEM(), tok, uuid, mac)
	if resp.Node != vm.Name {
		t.Errorf("enrolled as %q, want %q", resp.Node, vm.Name)
	}
	ctx := context.Background()
	waitStore(t, d.Store(), mac, timeline.Script, timeline.Kernel, timeline.Initrd, timeline.Enroll)

	// The manager founds the swarm: report, plan init, report active.
	rep := api.Report{Swarm: api.SwarmState{State: "inactive"}, Docker: api.DockerState{Reachable: true}}
	if err := cl.Report(ctx, rep); err != nil {
		t.Fatal(err)
	}
	waitStore(t, d.Store(), mac, timeline.Enroll, timeline.Report)
	if p, err := cl.Plan(ctx); err != nil || p.Action != api.ActionInit {
		t.Fatalf("plan after the first report: %+v, %v; want init", p, err)
	}
	rep.Swarm = api.SwarmState{State: "active", Role: api.RoleManager, NodeID: "n1", ClusterID: "c1", ControlAvailable: true}
	if err := cl.Report(ctx, rep); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	full := []timeline.Kind{timeline.VMCreated, timeline.Token, timeline.Script, timeline.Kernel, timeline.Initrd,
		timeline.Enroll, timeline.Report, timeline.SwarmInit}
	waitStore(t, d.Store(), mac, full...)
	waitStore(t, d.Store(), mac, timeline.Enroll, timeline.SwarmJoin)

	// The same history on the timeline (`swarmboot events MAC`).
	hw, _ := net.ParseMAC(mac)
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs := d.Timeline().Events(hw)
		if _, ok := timeline.InOrder(evs, timeline.Script, timeline.Kernel, timeline.Initrd, timeline.Enroll, timeline.SwarmInit); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeline of %s: %v, want script, kernel, initrd, enroll, swarm-init", mac, timeline.Kinds(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Spent at enrollment: the kernel line no longer carries it.
	if script := get(t, d.HTTPBase()+"/boot/"+mac+".ipxe"); strings.Contains(script, TokenArg) {
		t.Errorf("script after enrollment still carries a token:\n%s", script)
	}
	// A replay with another key is refused.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(d.CAPEM())
	id2, _ := agent.LoadIdentity(t.TempDir())
	cl2, _ := agent.NewClient(d.APIURL(), "", roots, id2)
	csr2, _ := id2.CSR()
	if _, err := cl2.Enroll(ctx, api.EnrollRequest{Token: tok, BIOSUUID: uuid, MACs: []string{mac}, CSR: csr2}); err == nil {
		t.Error("a replayed token with another key was accepted")
	}

	// The token exists nowhere but on the kernel line: not in the store
	// (only its hash), not in any event, not in the logs.
	var th *store.Token
	if err := d.Store().View(func(tx *store.Tx) error { th, err = tx.TokenByHash(store.HashToken(tok)); return err }); err != nil {
		t.Fatalf("the token's hash is not in the store: %v", err)
	}
	if th.Spent.IsZero() || th.MAC != mac {
		t.Errorf("stored token %+v: want spent, bound to %s", th, mac)
	}
	raw, err := os.ReadFile(d.Store().Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(tok)) {
		t.Error("the token is in the store file in clear")
	}
	for _, e := range d.Timeline().Events(hw) {
		if strings.Contains(e.Detail, tok) {
			t.Errorf("timeline event %s carries the token", e.Kind)
		}
	}
	if l := logs.String(); strings.Contains(l, tok) {
		t.Error("the token is in the logs")
	} else if !strings.Contains(l, "enrolled") || !strings.Contains(l, "ipxe script") {
		t.Errorf("the captured logs miss the appliance's lines (capture broken?):\n%s", l)
	}
}

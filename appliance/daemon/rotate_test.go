package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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
	"github.com/swarmboot/swarmboot/appliance/rotate"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

// labMachine plays a netbooted worker and its swarm's manager: its agent
// heartbeats through the real agent API; a reset takes it down and it
// boots whatever image the appliance's iPXE script for its MAC names now.
type labMachine struct {
	mu      sync.Mutex
	version string // what the agent reports
	up      bool
	avail   string
	broken  bool // a reset never brings it back
	resets  int
	base    string // the appliance's HTTP base
	mac     string
	art     string
}

const labNodeID = "w1nodeid0000000000000000a"

// Swarm is the manager's view (swarm.Source).
func (m *labMachine) Swarm(context.Context) (swarm.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	state := api.NodeDown
	if m.up {
		state = api.NodeReady
	}
	return swarm.Info{ClusterID: "c1", Worker: "SWMTKN-1-secret-w", Manager: "SWMTKN-1-secret-m", Managers: []string{"127.0.0.1:2377"},
		NodeIDs: []string{labNodeID}, From: "test manager",
		Nodes: []api.SwarmNode{{ID: labNodeID, Hostname: "w1", Role: api.RoleWorker, State: state, Availability: m.avail}}}, nil
}

// SetAvailability and Remove make it a swarm.Operator.
func (m *labMachine) SetAvailability(_ context.Context, id, availability string) error {
	if id != labNodeID {
		return fmt.Errorf("no node %s", id)
	}
	m.mu.Lock()
	m.avail = availability
	m.mu.Unlock()
	return nil
}

func (m *labMachine) Remove(context.Context, string, bool) error {
	return fmt.Errorf("not in this test")
}

var kernelRE = regexp.MustCompile(`/([A-Za-z0-9_.-]+)-kernel`)

// reset is the daemon's ResetVM hook.
func (m *labMachine) reset(_ context.Context, vm string) error {
	m.mu.Lock()
	m.up = false
	m.resets++
	broken := m.broken
	m.mu.Unlock()
	if vm != "w1" {
		return fmt.Errorf("reset of %s, want w1", vm)
	}
	if broken {
		return nil
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get(m.base + "/boot/" + m.mac + ".ipxe")
		if err != nil {
			return
		}
		script, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		k := kernelRE.FindStringSubmatch(string(script))
		if k == nil {
			return
		}
		v, err := build.ReadVersion(m.art, k[1])
		if err != nil {
			return
		}
		m.mu.Lock()
		m.version, m.up = v, true
		m.mu.Unlock()
	}()
	return nil
}

// state is the availability the manager lists and the resets so far.
func (m *labMachine) state() (string, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.avail, m.resets
}

func (m *labMachine) report() api.Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	return api.Report{ImageVersion: m.version, Docker: api.DockerState{Reachable: true},
		Swarm: api.SwarmState{State: "active", NodeID: labNodeID, Role: api.RoleWorker, ClusterID: "c1"}}
}

const labMAC = "52:54:00:ad:01:01"

// rollable writes the builds lab (lab@aaaaaaaaaaaa, what w1 runs) and
// lab2 (lab2@bbbbbbbbbbbb) into cfg's artifacts and makes a labMachine
// cfg's swarm and reset hook; it starts broken (a reset never brings it
// back).
func rollable(t *testing.T, cfg *Config) *labMachine {
	t.Helper()
	for img, v := range map[string]string{"lab": "lab@aaaaaaaaaaaa", "lab2": "lab2@bbbbbbbbbbbb"} {
		for _, f := range []string{"-kernel", "-initrd.img", "-cmdline"} {
			b, err := os.ReadFile(filepath.Join(cfg.Artifacts, "lab"+f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(cfg.Artifacts, img+f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(cfg.Artifacts, build.VersionFile(img)), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &labMachine{version: "lab@aaaaaaaaaaaa", up: true, avail: api.AvailabilityActive, broken: true, mac: labMAC, art: cfg.Artifacts}
	cfg.Swarm, cfg.ResetVM, cfg.RotatePoll = m, m.reset, 20*time.Millisecond
	return m
}

// worker records VM w1 (group workers, image lab) in d's store, enrolls
// its agent through the agent API and heartbeats as m says until the test
// ends.
func worker(t *testing.T, d *Daemon, m *labMachine) {
	t.Helper()
	m.base = d.HTTPBase()
	if err := d.Store().Update(func(tx *store.Tx) error {
		return tx.PutVM(store.VM{Name: "w1", Group: "workers", Role: api.RoleWorker, Image: "lab", MAC: labMAC})
	}); err != nil {
		t.Fatal(err)
	}
	c := admin.NewClient(d.AdminSocket())
	defer c.CloseIdle()
	ctx, cancel := context.WithCancel(context.Background())
	tr, err := c.CreateToken(ctx, admin.TokenRequest{MAC: labMAC})
	if err != nil {
		t.Fatal(err)
	}
	cl, _, _ := enrolltest.Enroll(t, d.APIURL(), d.CAPEM(), tr.Token, "00000000-0000-0000-0000-0000000001ad", labMAC)
	beat := make(chan struct{})
	go func() {
		defer close(beat)
		for ctx.Err() == nil {
			m.mu.Lock()
			up := m.up
			m.mu.Unlock()
			if up {
				_ = cl.Report(ctx, m.report())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-beat })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, _, ok := d.API().LastReport("w1"); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat of w1 reached the appliance")
		}
	}
}

// TestRotateThroughAdminSocket rolls a netbooted worker of a running
// appliance through its admin socket: a dry run plans it, a roll whose
// machine never comes back stops after the timeout leaving it drained
// (and says so in the stream and the status), and the same roll again
// resumes: the VM boots the new image (its iPXE script names it), the
// agent reports the new version, the node is active again, and the steps
// are on the machine's timeline. No join token reaches the log.
func TestRotateThroughAdminSocket(t *testing.T) {
	logs := &testlog.Buffer{}
	cfg := loopbackConfig(t, logs)
	m := rollable(t, &cfg)
	d := start(t, cfg)
	c := admin.NewClient(d.AdminSocket())
	defer c.CloseIdle()
	ctx := context.Background()
	const mac = labMAC
	worker(t, d, m)

	req := admin.RotateRequest{Groups: []admin.RotateGroup{{Group: "workers", Image: "lab2"}}, Timeout: "1500ms"}
	lines, err := c.PlanRotation(ctx, req)
	if err != nil || len(lines) != 1 || !strings.Contains(lines[0], "w1 (worker, group workers): lab@aaaaaaaaaaaa → lab2@bbbbbbbbbbbb") {
		t.Fatalf("dry run: %q, %v", lines, err)
	}
	if _, n := m.state(); n != 0 {
		t.Fatal("the dry run reset the machine")
	}

	// A refused roll leaves nothing running for Run to wait for.
	bad := req
	bad.Groups = []admin.RotateGroup{{Group: "workers", Image: "nope"}}
	if _, err := c.Rotate(ctx, bad, func(admin.RotateLine) {}); err == nil || !strings.Contains(err.Error(), "nope-kernel") {
		t.Fatalf("roll onto an unbuilt image: %v, want refused", err)
	}
	idle := make(chan struct{})
	go func() { d.rot.wg.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-time.After(5 * time.Second):
		t.Fatal("a refused roll is still counted as running: Run would never return")
	}
	if d.RotationRunning() {
		t.Error("a refused roll is still marked running")
	}

	var steps []string
	end, err := c.Rotate(ctx, req, func(l admin.RotateLine) { steps = append(steps, l.Step) })
	if err != nil || end == nil || end.State != store.RotationStopped || !strings.Contains(end.Error, "stays drained") || !strings.Contains(end.Error, "timed out") {
		t.Fatalf("roll of a machine that does not come back: end %+v, %v; steps %q", end, err, steps)
	}
	if avail, _ := m.state(); avail != api.AvailabilityDrain {
		t.Errorf("after the stopped roll w1 is %q, want left drained", avail)
	}
	if s, err := c.Rotation(ctx); err != nil || s.Running || s.Rotation == nil || s.Rotation.State != store.RotationStopped || s.Rotation.Nodes[0].Step != "failed" {
		t.Errorf("status after the stopped roll: %+v, %v", s, err)
	}

	m.mu.Lock()
	m.broken = false
	m.mu.Unlock()
	req.Timeout = "20s"
	steps = nil
	end, err = c.Rotate(ctx, req, func(l admin.RotateLine) { steps = append(steps, l.Step) })
	if err != nil || end.State != store.RotationDone || end.Error != "" {
		t.Fatalf("resumed roll: end %+v, %v; steps %q", end, err, steps)
	}
	if s, err := c.Rotation(ctx); err != nil || s.Running || s.Rotation.State != store.RotationDone {
		t.Errorf("status right after the End line: %+v, %v; want done, nothing running", s, err)
	}
	// The second drain line: the fake manager's agent sends no task
	// counts, so the roll records that it could not wait for them.
	if want := "start drain drain image reset boot activate done done end"; strings.Join(steps, " ") != want {
		t.Errorf("steps %q, want %q", strings.Join(steps, " "), want)
	}
	if avail, _ := m.state(); avail != api.AvailabilityActive || m.report().ImageVersion != "lab2@bbbbbbbbbbbb" {
		t.Errorf("after the roll: %s on %s, want active on lab2", avail, m.report().ImageVersion)
	}
	if script := get(t, d.HTTPBase()+"/boot/"+mac+".ipxe"); !strings.Contains(script, "lab2-kernel") {
		t.Errorf("w1's script after the roll does not boot lab2:\n%s", script)
	}
	// The roll writes its steps as timeline.Rotate: the kind the mirror
	// copies and the timeline documents.
	if n := enrolltest.Events(t, d.Store(), mac, string(timeline.Rotate)); n < 10 {
		t.Errorf("%d rotate events for w1, want the steps of both rolls", n)
	}
	hw, _ := net.ParseMAC(mac)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n := 0
		for _, e := range d.Timeline().Events(hw) {
			if e.Kind == timeline.Rotate {
				n++
			}
		}
		if n >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rotate events on w1's timeline, want the steps of both rolls", n)
		}
	}
	if strings.Contains(logs.String(), "SWMTKN") {
		t.Error("a join token is in the log")
	}
}

// TestRotationInterruptedAtStart: a roll the store says is running died
// with the last process: the next start marks it interrupted, logs it,
// and status shows it with what to do.
func TestRotationInterruptedAtStart(t *testing.T) {
	logs := &testlog.Buffer{}
	cfg := loopbackConfig(t, logs)
	st, err := store.Open(store.DefaultPath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	rot := store.Rotation{ID: "r", State: store.RotationRunning, Nodes: []store.RotationNode{{VM: "w1", Step: "boot", Drained: true}}}
	if err := st.Update(func(tx *store.Tx) error { return tx.PutRotation(rot) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	d := start(t, cfg)
	c := admin.NewClient(d.AdminSocket())
	defer c.CloseIdle()
	s, err := c.Rotation(context.Background())
	if err != nil || s.Running || s.Rotation == nil || s.Rotation.State != store.RotationInterrupted ||
		!strings.Contains(s.Rotation.Message, "w1 (step boot)") || !strings.Contains(s.Rotation.Message, "swarmboot rotate again") {
		t.Errorf("status after a restart: %+v, %v", s, err)
	}
	if !strings.Contains(logs.String(), "interrupted") {
		t.Error("the interrupted roll is not logged")
	}
}

// TestRotateGoAPI: Rotate needs a running appliance, refuses a second
// roll while one runs, and a roll under way ends (interrupted, the node
// left drained) when the appliance stops even though the caller's context
// goes on: Run waits for it.
func TestRotateGoAPI(t *testing.T) {
	logs := &testlog.Buffer{}
	cfg := loopbackConfig(t, logs)
	m := rollable(t, &cfg)
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	req := rotate.Request{Targets: []rotate.Target{{Group: "workers", Image: "lab2"}}, Timeout: time.Hour}
	if _, err := d.Rotate(context.Background(), req, nil); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Rotate before Run: %v", err)
	}
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); d.rotCtx() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the appliance did not start")
		}
	}
	worker(t, d, m)
	rolled := make(chan error, 1)
	go func() {
		_, err := d.Rotate(context.Background(), req, nil)
		rolled <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, n := m.state(); n == 1 {
			break // reset: the roll waits for a machine that will not come back
		}
		if time.Now().After(deadline) {
			t.Fatal("the roll did not reset w1")
		}
	}
	if _, err := d.Rotate(context.Background(), req, nil); !errors.Is(err, admin.ErrRotationRunning) {
		t.Errorf("second roll: %v, want ErrRotationRunning", err)
	}
	cancel()
	select {
	case err := <-rolled:
		if !errors.Is(err, rotate.ErrStopped) || !strings.Contains(err.Error(), "interrupted") {
			t.Errorf("roll when the appliance stopped: %v, want interrupted", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the roll did not end with the appliance")
	}
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
	var rot *store.Rotation
	if err := d.Store().View(func(tx *store.Tx) error { var err error; rot, err = tx.Rotation(); return err }); err != nil ||
		rot.State != store.RotationInterrupted || !rot.Nodes[0].Drained {
		t.Errorf("recorded roll %+v, %v; want interrupted, w1 drained", rot, err)
	}
}

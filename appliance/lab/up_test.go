package lab

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	imgstore "github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/netns"
)

// syncBuf is a concurrency-safe progress sink that also streams to the log.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
	t  *testing.T
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Log(strings.TrimRight(string(p), "\n"))
	return s.b.Write(p)
}

// TestLabUp is the project's end-to-end test: lab.Up brings up the
// appliance (simulated vCenter, full DHCP) in a namespace and netboots one
// manager and two workers in QEMU with their tokens on the kernel line;
// they enroll and form a swarm on fresh disks. Then the workers are rolled onto a
// second image (drained, reset, activated, as `swarmboot rotate` does):
// no second enrollment, still in the swarm, disk pre-existing.
func TestLabUp(t *testing.T) {
	needApt(t)
	if err := Check(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	agent := filepath.Join(tmp, "swarmboot-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", agent, "../../cmd/swarmboot-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build swarmboot-agent: %v\n%s", err, out)
	}
	s, err := imgstore.Open(filepath.Join(tmp, "images"))
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuf{t: t}
	dir := filepath.Join(tmp, "lab")
	start := time.Now()
	l, err := Up(ctx, Options{Dir: dir, Images: s, YML: "../../linuxkit/lab.yml", Agent: agent, Out: out, Subnet: 61, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cpu, rss := l.Usage()
	t.Logf("lab up → swarm of %d in %v; initrd %.1f MiB; appliance CPU %v during the boots, peak RSS %d MiB",
		len(l.Machines), time.Since(start).Round(time.Second), float64(l.Initrd)/(1<<20), cpu.Round(100*time.Millisecond), rss>>20)
	info, err := l.Swarm(ctx, start)
	if err != nil {
		t.Error(err)
	}
	nodes, err := l.Summary()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	PrintSummary(&sb, info, nodes)
	t.Logf("first boot:\n%s", sb.String())
	checkSwarm(t, "first boot", info, l.Machines)
	check(t, "first boot", nodes, api.FormattedThisBoot, l.Version)
	if !strings.HasPrefix(l.Version, "lab@") {
		t.Errorf("the lab image's version is %q, want lab@<digest>", l.Version)
	}
	checkForward(t, l)
	for _, n := range nodes {
		want := []string{"dhcp-ack", "script", "kernel", "initrd", "enroll", "swarm-join"}
		switch {
		case n.Role == "manager":
			want = []string{"dhcp-ack", "script", "kernel", "initrd", "enroll", "swarm-init"}
		case n.Firmware == "efi":
			// OVMF's own PXE client fetches ipxe.efi over TFTP first.
			want = []string{"dhcp-ack", "tftp", "script", "kernel", "initrd", "enroll", "swarm-join"}
		}
		if miss, ok := inOrder(n.Events, want...); !ok {
			t.Errorf("%s: timeline lacks %s in order:\n%s", n.Name, miss, kinds(n.Events))
		}
	}
	if t.Failed() {
		return
	}

	// The workers reboot by being rolled onto a new image: each is drained,
	// reset (QMP system_reset) into lab-2, and activated when it is back.
	t0 := time.Now()
	v2, err := l.RotateWorkers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("workers rolled onto %s (image %s before) and back in the swarm in %v", v2, l.Version, time.Since(t0).Round(time.Second))
	if v2 == l.Version || !strings.HasPrefix(v2, "lab-2@") {
		t.Errorf("the second image's version is %q, want lab-2@… and not the first's %q", v2, l.Version)
	}
	if info, err = l.Swarm(ctx, time.Now()); err != nil {
		t.Error(err)
	}
	nodes, err = l.Summary()
	if err != nil {
		t.Fatal(err)
	}
	sb.Reset()
	PrintSummary(&sb, info, nodes)
	checkSwarm(t, "after the roll", info, l.Machines)
	for _, n := range info.Nodes {
		if n.Availability != api.AvailabilityActive {
			t.Errorf("after the roll: node %s (%s) is %q, want active", n.ID, n.Hostname, n.Availability)
		}
	}
	t.Logf("after the workers' roll:\n%s", sb.String())
	for _, n := range nodes {
		want, version := api.FormattedThisBoot, l.Version
		if n.Role == "worker" {
			want, version = api.FormattedPreExisting, v2
			enrolls := 0
			for _, e := range n.Events {
				if e.Kind == "enroll" {
					enrolls++
				}
			}
			if enrolls != 1 {
				t.Errorf("%s: %d enroll events, want 1 (no re-enrollment after a reboot):\n%s", n.Name, enrolls, kinds(n.Events))
			}
			// Drained through the manager's agent, rebooted, activated.
			if miss, ok := inOrder(n.Events, "enroll", "swarm-join", "swarm-op", "script", "kernel", "initrd", "report", "swarm-op", "rotate"); !ok {
				t.Errorf("%s: the roll's timeline lacks %s:\n%s", n.Name, miss, kinds(n.Events))
			}
		}
		check(t, "after the roll", []NodeSummary{n}, want, version)
	}
	if err := l.Close(); err != nil {
		t.Errorf("lab close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir left behind: %v", err)
	}
	if names, _ := netns.List(NSPrefix); len(names) > 0 {
		for _, n := range names {
			if n == l.ns.Name() {
				t.Errorf("namespace %s left behind", n)
			}
		}
	}
}

// checkSwarm asserts the manager's node list: every machine ready in its
// role, one manager (the leader), an EFI worker among them, nothing else.
func checkSwarm(t *testing.T, when string, info swarm.Info, machines []*Machine) {
	t.Helper()
	if info.Ready() != len(machines) || len(info.Nodes) != len(machines) {
		t.Errorf("%s: the manager lists %d nodes, %d ready; want %d ready", when, len(info.Nodes), info.Ready(), len(machines))
	}
	managers, efi := 0, 0
	for _, n := range info.Nodes {
		if n.Role == api.RoleManager {
			managers++
			if !n.Leader {
				t.Errorf("%s: manager %s is not the leader", when, n.ID)
			}
		}
	}
	for _, mc := range machines {
		if mc.Firmware == "efi" {
			efi++
		}
	}
	if managers != 1 || efi != 1 {
		t.Errorf("%s: %d managers and %d EFI machines, want 1 and 1", when, managers, efi)
	}
	if !strings.Contains(info.From, "lab-m1") {
		t.Errorf("%s: node list from %q, want the manager lab-m1", when, info.From)
	}
}

// checkForward reads the appliance's machine list through the lab's
// host-side forward (every lab machine is there) and is refused a boot script.
func checkForward(t *testing.T, l *Lab) {
	t.Helper()
	resp, err := http.Get(l.ForwardURL() + "/api/machines")
	if err != nil {
		t.Errorf("forward: %v", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, mc := range l.Machines {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), strings.ToLower(mc.MAC)) {
			t.Errorf("forward %s/api/machines: %s lacks %s:\n%s", l.ForwardURL(), resp.Status, mc.MAC, b)
		}
	}
	// Boot scripts carry tokens: they stay on the lab's network.
	script, err := http.Get(l.ForwardURL() + "/boot/" + strings.ToLower(l.Machines[0].MAC) + ".ipxe")
	if err != nil {
		t.Errorf("forward: %v", err)
		return
	}
	script.Body.Close()
	if script.StatusCode != http.StatusForbidden {
		t.Errorf("forward served a boot script: %s, want 403", script.Status)
	}
}

// check asserts one manager, the rest workers, all active in one swarm,
// each on a persistent disk formatted as want, running the image version.
func check(t *testing.T, when string, nodes []NodeSummary, want api.Formatted, version string) {
	t.Helper()
	cluster := ""
	for _, n := range nodes {
		r := n.Report
		if r == nil {
			t.Errorf("%s: %s has no report", when, n.Name)
			continue
		}
		if r.Swarm.State != "active" || r.Swarm.Role != n.Role {
			t.Errorf("%s: %s swarm state %q role %q, want active %s", when, n.Name, r.Swarm.State, r.Swarm.Role, n.Role)
		}
		if cluster == "" {
			cluster = r.Swarm.ClusterID
		}
		if r.Swarm.ClusterID != "" && r.Swarm.ClusterID != cluster {
			t.Errorf("%s: %s in cluster %s, others in %s", when, n.Name, r.Swarm.ClusterID, cluster)
		}
		if r.ImageVersion != version {
			t.Errorf("%s: %s runs image %q, want %q", when, n.Name, r.ImageVersion, version)
		}
		if !r.Disk.Persistent || r.Disk.Formatted != want || !strings.HasPrefix(r.Disk.Device, "/dev/") {
			t.Errorf("%s: %s disk %+v, want persistent, formatted %s", when, n.Name, r.Disk, want)
		}
	}
}

// inOrder reports whether kinds appear as a subsequence of ev.
func inOrder(ev []store.Event, want ...string) (string, bool) {
	i := 0
	for _, e := range ev {
		if i < len(want) && e.Kind == want[i] {
			i++
		}
	}
	if i < len(want) {
		return want[i], false
	}
	return "", true
}

func kinds(ev []store.Event) string {
	var sb strings.Builder
	for _, e := range ev {
		sb.WriteString("  " + e.Time.Format("15:04:05.000") + " " + e.Kind + " " + redact(e.Detail) + "\n")
	}
	return sb.String()
}

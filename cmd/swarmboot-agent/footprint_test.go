package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// Goals from the design: the agent binary ≤ 10 MB, its RSS ≤ 20 MB.
const (
	goalSizeMB = 10
	goalRSSMB  = 20
)

// buildAgent builds the static agent as `make build` does.
func buildAgent(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "swarmboot-agent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// statusKB reads a "VmXXX:  N kB" line of /proc/PID/status.
func statusKB(pid int, field string) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// runAgentProcess runs the built agent with baked-in-style trust files
// until its node founded a swarm and sent heartbeats; it returns the
// peak RSS in kB.
func runAgentProcess(tb testing.TB, bin string, logs map[string]*lockedBuf) int {
	l := newLab(tb, 63)
	d := l.add(logs["dockerd"])
	a := startAppliance(tb, nil, logs["appliance"])
	m := a.machine(tb, d, "manager-1", "manager", 1)
	trust := filepath.Join(m.dir, "trust")
	os.MkdirAll(trust, 0o755)
	cfg, _ := json.Marshal(api.TrustConfig{URL: a.url, Image: "worker-test-1"})
	os.WriteFile(filepath.Join(trust, api.TrustConfigFile), cfg, 0o644)
	os.WriteFile(filepath.Join(trust, api.TrustCAFile), a.caPEM, 0o644)
	os.WriteFile(filepath.Join(m.dir, "token"), []byte(m.token+"\n"), 0o600)
	cmd := exec.Command(bin, "-trust", trust, "-state", filepath.Join(m.dir, "state"), "-docker", d.Host,
		"-data", filepath.Join(m.dir, "data"), "-token-file", filepath.Join(m.dir, "token"),
		"-bios-uuid-file", filepath.Join(m.dir, "uuid"), "-advertise-addr", d.IP, "-heartbeat", "200ms")
	cmd.Stdout, cmd.Stderr = logs["agent"], logs["agent"]
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := d.c.Info(context.Background(), client.InfoOptions{})
		if err == nil && res.Info.Swarm.ControlAvailable {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the agent did not found the swarm in 60 s:\n%s", logs["agent"].String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // ~15 heartbeats with reports and token pushes
	// The binary reports this host's real MACs: find the node's first.
	var mac string
	a.st.View(func(tx *store.Tx) error {
		if n, err := tx.Node(m.name); err == nil {
			mac = n.MAC()
		}
		return nil
	})
	if got := a.events(tb, mac, "swarm-init"); got != 1 {
		tb.Fatalf("%d swarm-init events, want 1; agent:\n%s", got, logs["agent"].String())
	}
	if !a.seenSince(m.name, time.Now(), 10*time.Second) {
		tb.Fatal("no heartbeat stored")
	}
	var rep []byte
	a.st.View(func(tx *store.Tx) error {
		if n, err := tx.Node(m.name); err == nil {
			rep = n.LastReport
		}
		return nil
	})
	if !strings.Contains(string(rep), `"image_version":"worker-test-1"`) {
		tb.Errorf("stored report lacks the image version from appliance.json: %s", rep)
	}
	return statusKB(cmd.Process.Pid, "VmHWM")
}

// TestAgentBinary runs the real static binary: enroll from a token file,
// swarm init, heartbeats; and checks it stays within the size goal.
func TestAgentBinary(t *testing.T) {
	needLab(t)
	t.Parallel()
	bin := buildAgent(t)
	logs := map[string]*lockedBuf{"dockerd": {}, "appliance": {}, "agent": {}}
	peak := runAgentProcess(t, bin, logs)
	if fi, _ := os.Stat(bin); fi.Size() > goalSizeMB*1e6 {
		t.Errorf("agent binary %d bytes > %d MB", fi.Size(), goalSizeMB)
	}
	if peak == 0 || peak > goalRSSMB*1000 {
		t.Errorf("agent peak RSS %d kB (goal ≤ %d MB)", peak, goalRSSMB)
	}
	if !strings.Contains(logs["agent"].String(), "enrolled as node manager-1 (token from file") {
		t.Errorf("agent output does not show the enrollment:\n%s", logs["agent"].String())
	}
}

// BenchmarkAgentFootprint reports the static agent's size and its peak
// RSS while it enrolls, inits a swarm and heartbeats, against the goals
// (10 MB on disk, 20 MB RSS).
func BenchmarkAgentFootprint(b *testing.B) {
	bin := buildAgent(b)
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	sizeMB := float64(fi.Size()) / 1e6
	b.ReportMetric(sizeMB, "size-MB")
	b.ReportMetric(sizeMB/goalSizeMB, "size-x-vs-goal")
	b.Logf("agent binary %.2f MB (goal ≤ %d MB)", sizeMB, goalSizeMB)
	if why := labMissing(); why != "" {
		b.Logf("RSS not measured: %s", why)
		return
	}
	for range b.N {
		logs := map[string]*lockedBuf{"dockerd": {}, "appliance": {}, "agent": {}}
		rss := float64(runAgentProcess(b, bin, logs)) / 1e3
		b.ReportMetric(rss, "rss-MB")
		b.ReportMetric(rss/goalRSSMB, "rss-x-vs-goal")
		b.Logf("agent peak RSS %.1f MB (goal ≤ %d MB)", rss, goalRSSMB)
	}
}

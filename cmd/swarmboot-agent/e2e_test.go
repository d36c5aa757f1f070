package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/appliance/enroll"
)

// TestExistingSwarm is the seed's case: a manager exists (swarm init by
// hand); the appliance reads its join tokens over the manager's Docker API
// with mutual TLS (tcp, --tlsverify); the
// worker's agent enrolls, joins, survives a reboot without enrolling
// again, and rejoins after the manager removed it.
func TestExistingSwarm(t *testing.T) {
	needLab(t)
	t.Parallel()
	logs := map[string]*lockedBuf{"dockerd": {}, "appliance": {}, "agent": {}, "console": {}}
	l := newLab(t, 61)
	var mtls managerTLS
	mgr, wrk := l.add(logs["dockerd"], mtls.setup(t)), l.add(logs["dockerd"])
	if out, err := mgr.docker("swarm", "init", "--advertise-addr", mgr.IP); err != nil {
		t.Fatalf("swarm init: %v: %s", err, out)
	}
	remote := mtls.remote(t, mgr)
	if _, err := remote.Swarm(context.Background()); err != nil {
		t.Fatalf("the manager's TLS Docker API: %v", err)
	}
	remote.TTL = 200 * time.Millisecond
	a := startAppliance(t, remote, logs["appliance"])
	m := a.machine(t, wrk, "worker-1", "worker", 1)

	stop := a.run(t, m, logs["console"], logs["agent"])
	waitNodes(t, mgr, "worker joined", func(n map[string]string) bool { return countReady(n, "worker") == 1 })
	id := nodeID(t, wrk)
	if out, err := mgr.docker("node", "ls"); err != nil || !strings.Contains(out, id) {
		t.Fatalf("docker node ls on the manager does not show %s: %v\n%s", id, err, out)
	}
	if got := a.events(t, m.mac, "enroll"); got != 1 {
		t.Fatalf("%d enroll events, want 1", got)
	}
	deadline := time.Now().Add(10 * time.Second) // heartbeats reach the store within a second
	for a.events(t, m.mac, "swarm-join") == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if a.events(t, m.mac, "swarm-join") == 0 {
		t.Error("no swarm-join event on the worker's timeline")
	}

	// Reboot: agent and dockerd go down and come back; the token is gone
	// from the command line (a new boot) — the key on disk is enough.
	stop()
	wrk.stop()
	os.WriteFile(filepath.Join(m.dir, "cmdline"), []byte("console=ttyS0 quiet\n"), 0o644)
	stop = a.run(t, m, logs["console"], logs["agent"]) // before dockerd: it must wait
	time.Sleep(500 * time.Millisecond)
	wrk.start()
	booted := time.Now()
	if !a.seenSince(m.name, booted, 30*time.Second) {
		t.Fatalf("no heartbeat after the reboot; console:\n%s", logs["console"].String())
	}
	if got := a.events(t, m.mac, "enroll"); got != 1 {
		t.Errorf("after reboot: %d enroll events, want 1 (no re-enrollment)", got)
	}
	if !strings.Contains(logs["console"].String(), "waiting for Docker") {
		t.Errorf("agent started before dockerd did not say it waits:\n%s", logs["console"].String())
	}
	if got := nodeID(t, wrk); got != id {
		t.Errorf("after reboot the node is %q, want still %q", got, id)
	}
	waitNodes(t, mgr, "worker ready after reboot", func(n map[string]string) bool { return n[id] == "ready/worker" })

	// The manager removes the node; the worker still thinks it is active.
	// The appliance sees it missing from the member list → leave-rejoin.
	secrets := append(joinTokens(t, mgr), m.token)
	if k, err := os.ReadFile(mtls.keyFile); err == nil { // the appliance's Docker API key
		lines := strings.Split(strings.TrimSpace(string(k)), "\n")
		secrets = append(secrets, lines[1:len(lines)-1]...)
	}
	if _, err := mgr.c.NodeRemove(context.Background(), id, client.NodeRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	nodes := waitNodes(t, mgr, "worker rejoined under a new ID", func(n map[string]string) bool {
		_, old := n[id]
		return !old && countReady(n, "worker") == 1
	})

	// The operator revokes the node: its certificate stops working, the
	// agent says so and waits for a token; a fresh token enrolls it again.
	// Revoke also removes its swarm node through the manager's TLS Docker
	// API (the swarm is not swarmboot's: no agent does it).
	rejoined := nodeID(t, wrk)
	waitFor(t, "a report with the new swarm node ID", func() bool {
		rep, _, ok := a.srv.LastReport(m.name)
		return ok && rep.Swarm.NodeID == rejoined
	})
	if err := a.srv.Revoke(m.name); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.c.NodeInspect(context.Background(), rejoined, client.NodeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("after revoke the manager still lists %s: %v", rejoined, err)
	}
	if got := a.events(t, m.mac, "swarm-op"); got != 1 {
		t.Errorf("%d swarm-op events after revoke, want 1", got)
	}
	waitFor(t, "the agent notices the revocation", func() bool {
		return strings.Contains(logs["console"].String(), "refuses this node's certificate")
	})
	fresh, err := enroll.NewToken(a.st, enroll.TokenFor{VM: m.name}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, fresh)
	os.WriteFile(filepath.Join(m.dir, "cmdline"), []byte("swarmboot.token="+fresh+"\n"), 0o644)
	waitFor(t, "re-enrollment with the fresh token", func() bool { return a.events(t, m.mac, "enroll") == 2 })
	waitFor(t, "heartbeats with the new certificate", func() bool { return a.seenSince(m.name, time.Now(), 5*time.Second) })
	stop()
	if !strings.Contains(logs["console"].String(), "leave-rejoin done") {
		t.Errorf("console does not show the leave-rejoin:\n%s", logs["console"].String())
	}
	t.Logf("nodes after rejoin: %v", nodes)
	scanSecrets(t, logs, secrets, filepath.Join(m.dir, "state"))
}

// TestManagedSwarmOneInit: three manager agents start at once against a
// swarmboot-managed site; exactly one inits, pushes the tokens, and the
// other two join as managers.
func TestManagedSwarmOneInit(t *testing.T) {
	needLab(t)
	t.Parallel()
	logs := map[string]*lockedBuf{"dockerd": {}, "appliance": {}, "agent": {}, "console": {}}
	l := newLab(t, 62)
	a := startAppliance(t, nil, logs["appliance"])
	var ms []*machine
	for i := range 3 {
		m := a.machine(t, l.add(logs["dockerd"]), "manager-"+string(rune('1'+i)), "manager", 10+i)
		if i == 0 {
			m.renewIn = 31 * 24 * time.Hour // > the 30-day validity: renews every heartbeat
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		a.run(t, m, logs["console"], logs["agent"])
	}
	var nodes map[string]string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := ms[0].d.c.Info(context.Background(), client.InfoOptions{}); err == nil && res.Info.Swarm.ControlAvailable {
			nodes = waitNodes(t, ms[0].d, "three managers", func(n map[string]string) bool { return countReady(n, "manager") == 3 })
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if nodes == nil {
		t.Fatalf("manager-1 never became a manager; console:\n%s", logs["console"].String())
	}
	inits := 0
	for _, m := range ms {
		inits += a.events(t, m.mac, "swarm-init")
	}
	if got := strings.Count(logs["console"].String(), "init done"); got != 1 || inits != 1 {
		t.Errorf("%d agents ran swarm init, %d swarm-init events; want exactly 1", got, inits)
	}
	if got := a.events(t, ms[0].mac, "renew"); got == 0 {
		t.Error("manager-1 never renewed its certificate")
	}
	secrets := joinTokens(t, ms[0].d)
	var dirs []string
	for _, m := range ms {
		secrets = append(secrets, m.token)
		dirs = append(dirs, filepath.Join(m.dir, "state"))
	}
	scanSecrets(t, logs, secrets, dirs...)
}

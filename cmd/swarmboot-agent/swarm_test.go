package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/appliance/enroll"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
)

// appliance is an in-process agent API on loopback.
type appliance struct {
	st    *store.Store
	srv   *enroll.Server
	url   string
	roots *x509.CertPool
	caPEM []byte
}

func startAppliance(t testing.TB, src swarm.Source, log *lockedBuf) *appliance {
	t.Helper()
	st, authority := enrolltest.Open(t)
	a := &appliance{st: st, roots: authority.Pool(), caPEM: authority.CertPEM}
	a.srv = &enroll.Server{Store: st, CA: authority, Hosts: []string{"127.0.0.1"}, Swarm: src, MemberGrace: time.Second,
		Log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a.url = enrolltest.Serve(t, a.srv)
	return a
}

// machine is a VM as the appliance created it: a record and a token.
type machine struct {
	name, uuid, mac string
	dir             string // uuid file, token file, agent state, data dir
	d               *dockerd
	token           string
	renewIn         time.Duration // agent renews when its certificate ends sooner
}

func (a *appliance) machine(t testing.TB, d *dockerd, name, role string, i int) *machine {
	t.Helper()
	m := &machine{name: name, uuid: fmt.Sprintf("4211c0de-0000-4000-8000-%012d", i), mac: fmt.Sprintf("52:54:00:77:00:%02x", i), dir: t.TempDir(), d: d}
	if err := a.st.Update(func(tx *store.Tx) error {
		return tx.PutVM(store.VM{Name: name, Role: role, BIOSUUID: m.uuid, MAC: m.mac})
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := enroll.NewToken(a.st, enroll.TokenFor{VM: name}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m.token = tok
	os.WriteFile(filepath.Join(m.dir, "uuid"), []byte(strings.ToUpper(m.uuid)+"\n"), 0o644)
	// The token comes on the kernel command line, as an iPXE script puts it.
	os.WriteFile(filepath.Join(m.dir, "cmdline"), []byte("console=ttyS0 swarmboot.token="+tok+" quiet\n"), 0o644)
	os.MkdirAll(filepath.Join(m.dir, "data"), 0o755)
	return m
}

// run starts the machine's agent; the returned func stops it and waits.
func (a *appliance) run(t testing.TB, m *machine, console, log *lockedBuf) (stop func()) {
	t.Helper()
	return a.runWith(t, m, console, log, nil)
}

// runWith is run with the agent's Config changed by mod first.
func (a *appliance) runWith(t testing.TB, m *machine, console, log *lockedBuf, mod func(*agent.Config)) (stop func()) {
	t.Helper()
	cfg := agent.Config{
		URL: a.url, Roots: a.roots, StateDir: filepath.Join(m.dir, "state"), DockerHost: m.d.Host,
		DataPath: filepath.Join(m.dir, "data"), BIOSUUIDPath: filepath.Join(m.dir, "uuid"), MACs: []string{m.mac},
		Tokens:    []agent.TokenSource{agent.GuestinfoToken{}, agent.CmdlineToken{Path: filepath.Join(m.dir, "cmdline")}},
		Advertise: m.d.IP, Heartbeat: 400 * time.Millisecond, BackoffMax: time.Second, RenewIn: m.renewIn,
		Console: console, Log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	ag, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", m.name, err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitNodes polls the manager until want reports true for its node list.
func waitNodes(t testing.TB, mgr *dockerd, what string, want func(ready map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last map[string]string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := mgr.c.NodeList(ctx, client.NodeListOptions{})
		cancel()
		if err == nil {
			last = map[string]string{}
			for _, n := range res.Items {
				last[n.ID] = fmt.Sprintf("%s/%s", n.Status.State, n.Spec.Role)
			}
			if want(last) {
				return last
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("%s: not reached in 90 s; nodes %v", what, last)
	return nil
}

func countReady(nodes map[string]string, role string) int {
	n := 0
	for _, s := range nodes {
		if s == "ready/"+role {
			n++
		}
	}
	return n
}

func nodeID(t testing.TB, d *dockerd) string {
	t.Helper()
	res, err := d.c.Info(context.Background(), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Info.Swarm.NodeID
}

func (a *appliance) events(t testing.TB, mac, kind string) int {
	t.Helper()
	return enrolltest.Events(t, a.st, mac, kind)
}

// joinTokens reads the swarm's join tokens from a manager (for the scan).
func joinTokens(t testing.TB, mgr *dockerd) []string {
	t.Helper()
	res, err := mgr.c.SwarmInspect(context.Background(), client.SwarmInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return []string{res.Swarm.JoinTokens.Worker, res.Swarm.JoinTokens.Manager}
}

// scanSecrets fails when any secret appears in any captured log.
func scanSecrets(t testing.TB, logs map[string]*lockedBuf, secrets []string, keyDirs ...string) {
	t.Helper()
	for _, dir := range keyDirs {
		b, err := os.ReadFile(filepath.Join(dir, agent.KeyFile))
		if err != nil {
			t.Fatalf("node key: %v", err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, agent.KeyFile)); fi.Mode().Perm() != 0o600 {
			t.Errorf("node key mode %v, want 0600", fi.Mode().Perm())
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		secrets = append(secrets, lines[1:len(lines)-1]...) // the base64 body
	}
	secrets = append(secrets, "PRIVATE KEY")
	for name, l := range logs {
		text := l.String()
		if text == "" && name != "dockerd" {
			t.Errorf("log %s is empty: the scan would prove nothing", name)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("log %s contains a secret (%.12s…)", name, s)
			}
		}
	}
}

// seenSince waits until the node's stored heartbeat is newer than t.
func (a *appliance) seenSince(name string, t time.Time, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var seen time.Time
		a.st.View(func(tx *store.Tx) error {
			if n, err := tx.Node(name); err == nil {
				seen = n.LastSeen
			}
			return nil
		})
		if seen.After(t) {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// waitFor polls cond for up to 60 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60 s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

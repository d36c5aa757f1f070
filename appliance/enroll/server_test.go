package enroll

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

const (
	uuid1 = "4211c0de-0000-4000-8000-000000000001"
	mac1  = "52:54:00:00:00:01"
)

func TestEnrollAttacksAndRetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.putVM("w1", uuid1, mac1, "worker")
	now := time.Now()
	good := h.token("w1", time.Hour, now)
	expired := h.token("w1", time.Hour, now.Add(-2*time.Hour))
	n := newNode(t)

	refusals := []struct {
		name, tok, uuid string
		want            int
	}{
		{"no token", "", uuid1, http.StatusBadRequest},
		{"wrong token", "AAAAwrongtokenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", uuid1, http.StatusForbidden},
		{"expired token", expired, uuid1, http.StatusForbidden},
		{"right token, wrong UUID", good, "4211c0de-0000-4000-8000-0000000000ff", http.StatusForbidden},
	}
	for _, r := range refusals {
		code, resp := h.enroll(n, r.tok, r.uuid, mac1)
		if code != r.want || resp.Certificate != nil {
			t.Errorf("%s: status %d (cert %v), want %d and nothing issued", r.name, code, resp.Certificate != nil, r.want)
		}
		if nodes, evs := h.issued(); nodes != 0 || evs != 0 {
			t.Fatalf("%s: %d nodes, %d enroll events after a refusal", r.name, nodes, evs)
		}
	}
	if got := h.events(mac1, "enroll-refused"); got != 2 {
		t.Errorf("%d enroll-refused events, want 2 (expired, wrong UUID)", got)
	}

	// The right token with the right UUID (any case, braces) works once.
	code, first := h.enroll(n, good, "{"+strings.ToUpper(uuid1)+"}", mac1)
	if code != http.StatusOK || first.Node != "w1" || len(first.Certificate) == 0 {
		t.Fatalf("enroll: %d %+v", code, first)
	}
	if h.clear.vms == nil || h.clear.vms[0] != "w1" {
		t.Errorf("guestinfo not cleared: %v", h.clear.vms)
	}
	// A retry with the same key gets the same certificate, nothing new.
	code, again := h.enroll(n, good, uuid1, mac1)
	if code != http.StatusOK || !bytes.Equal(again.Certificate, first.Certificate) {
		t.Errorf("retry with the same key: %d, same cert %v", code, bytes.Equal(again.Certificate, first.Certificate))
	}
	if len(h.clear.vms) != 1 {
		t.Errorf("guestinfo cleared %d times, want 1", len(h.clear.vms))
	}
	// The replayed token with another key is refused and recorded.
	thief := newNode(t)
	if code, resp := h.enroll(thief, good, uuid1, mac1); code != http.StatusForbidden || resp.Certificate != nil {
		t.Errorf("replayed token, other key: %d", code)
	}
	if nodes, evs := h.issued(); nodes != 1 || evs != 1 {
		t.Errorf("after replay: %d nodes, %d enroll events; want 1, 1", nodes, evs)
	}
	if got := h.events(mac1, "enroll-refused"); got != 3 {
		t.Errorf("replay not recorded: %d enroll-refused events, want 3", got)
	}

	// Node calls: without a certificate, with one from another CA,
	// with the real one, then revoked.
	if code, _ := h.plan(&node{}); code != http.StatusUnauthorized {
		t.Errorf("plan without client cert: %d, want 401", code)
	}
	if code := h.report(&node{}, api.Report{}); code != http.StatusUnauthorized {
		t.Errorf("report without client cert: %d, want 401", code)
	}
	other, err := ca.Open(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := ca.ParseCSR(n.csr(t))
	der, _, _ := other.SignNode(csr, "w1")
	forged := &node{key: n.key}
	forged.setCert(t, ca.PEM(der))
	if _, err := h.call(h.client(forged), "GET", api.PathPlan, nil, nil); err == nil {
		t.Error("certificate from another CA: TLS handshake succeeded")
	}
	n.setCert(t, first.Certificate)
	if code := h.report(n, api.Report{Swarm: api.SwarmState{State: "inactive"}}); code != http.StatusNoContent {
		t.Fatalf("report: %d", code)
	}
	code, p := h.plan(n)
	if code != http.StatusOK || p.Action != api.ActionNone || p.RetryAfter == 0 {
		t.Errorf("plan before any swarm: %d %+v, want none + retry", code, p)
	}
	if err := h.srv.Revoke("w1"); err != nil {
		t.Fatal(err)
	}
	if code, _ := h.plan(n); code != http.StatusForbidden {
		t.Errorf("revoked node's plan: %d, want 403", code)
	}
	if code := h.report(n, api.Report{}); code != http.StatusForbidden {
		t.Errorf("revoked node's report: %d, want 403", code)
	}
	if code, _ := h.enroll(n, good, uuid1, mac1); code != http.StatusForbidden {
		t.Errorf("revoked node re-enrolls with its spent token: %d", code)
	}

	logs := h.logs.String()
	for _, secret := range []string{good, expired, "PRIVATE KEY"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q", secret[:8])
		}
	}
}

// TestManagedSwarmPlans: three managers ask at once → exactly one init;
// the init manager pushes tokens → the others and a worker get join plans
// with the right token; a node the swarm no longer lists gets
// leave-rejoin; pushed tokens are not stored.
func TestManagedSwarmPlans(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	nodes := map[string]*node{}
	for i, name := range []string{"m1", "m2", "m3", "w1"} {
		role := "manager"
		if name == "w1" {
			role = "worker"
		}
		uuid, mac := fmt.Sprintf("uuid-%d", i), fmt.Sprintf("52:54:00:00:00:0%d", i+1)
		h.putVM(name, uuid, mac, role)
		n := newNode(t)
		code, resp := h.enroll(n, h.token(name, time.Hour, time.Now()), uuid, mac)
		if code != http.StatusOK {
			t.Fatalf("enroll %s: %d", name, code)
		}
		n.setCert(t, resp.Certificate)
		nodes[name] = n
		h.report(n, api.Report{Swarm: api.SwarmState{State: "inactive"}})
	}
	var mu sync.Mutex
	var inits []string
	var wg sync.WaitGroup
	for _, name := range []string{"m1", "m2", "m3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, p := h.plan(nodes[name])
			if p.Action == api.ActionInit {
				mu.Lock()
				inits = append(inits, name)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(inits) != 1 {
		t.Fatalf("init plans: %v, want exactly one", inits)
	}
	founder := inits[0]
	if _, p := h.plan(nodes["w1"]); p.Action != api.ActionNone {
		t.Errorf("worker before tokens: %+v, want none", p)
	}
	const workerTok, managerTok = "SWMTKN-1-test-worker-secret", "SWMTKN-1-test-manager-secret"
	push := &api.ManagerPush{ClusterID: "c1", Worker: workerTok, Manager: managerTok, Managers: []string{"10.77.0.2:2377"}, NodeIDs: []string{"n-founder"}}
	// A worker's push is ignored.
	h.report(nodes["w1"], api.Report{Swarm: api.SwarmState{State: "active", ControlAvailable: true}, JoinTokens: push})
	if _, p := h.plan(nodes["w1"]); p.Action != api.ActionNone {
		t.Errorf("worker-pushed tokens were accepted: %+v", p)
	}
	h.report(nodes["w1"], api.Report{Swarm: api.SwarmState{State: "inactive"}})
	h.report(nodes[founder], api.Report{Swarm: api.SwarmState{State: "active", ControlAvailable: true, NodeID: "n-founder", ClusterID: "c1", Role: "manager"}, JoinTokens: push})
	if _, p := h.plan(nodes[founder]); p.Action != api.ActionNone {
		t.Errorf("founder after init: %+v, want none", p)
	}
	// The founder loses its swarm (disk replaced): it must rejoin, never
	// found a second swarm.
	h.report(nodes[founder], api.Report{Swarm: api.SwarmState{State: "inactive"}})
	if _, p := h.plan(nodes[founder]); p.Action != api.ActionJoin || p.JoinToken != managerTok {
		t.Errorf("founder that lost its swarm: %v, want join as manager", p.Action)
	}
	h.report(nodes[founder], api.Report{Swarm: api.SwarmState{State: "active", ControlAvailable: true, NodeID: "n-founder", ClusterID: "c1", Role: "manager"}, JoinTokens: push})
	for name, want := range map[string]string{"w1": workerTok, "m1": managerTok, "m2": managerTok, "m3": managerTok} {
		if name == founder {
			continue
		}
		_, p := h.plan(nodes[name])
		if p.Action != api.ActionJoin || p.JoinToken != want || p.Managers[0] != "10.77.0.2:2377" {
			t.Errorf("%s: plan %v %v, want join with its role's token", name, p.Action, p.Managers)
		}
	}
	// w1 joined (reports active as n-w1) but the member list pushed later
	// does not have it: removed → leave-rejoin, once the list is newer.
	h.report(nodes["w1"], api.Report{Swarm: api.SwarmState{State: "active", NodeID: "n-w1", Role: "worker"}})
	if _, p := h.plan(nodes["w1"]); p.Action != api.ActionNone {
		t.Errorf("w1 just joined: %+v, want none (member list is older than the join)", p)
	}
	h.skew.Store(int64(time.Minute))
	h.report(nodes[founder], api.Report{Swarm: api.SwarmState{State: "active", ControlAvailable: true, NodeID: "n-founder", ClusterID: "c1"}, JoinTokens: push})
	if _, p := h.plan(nodes["w1"]); p.Action != api.ActionLeaveRejoin || p.JoinToken != workerTok {
		t.Errorf("removed w1: %+v, want leave-rejoin", p.Action)
	}
	if err := h.srv.flush(); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	h.st.View(func(tx *store.Tx) error {
		n, _ := tx.Node(founder)
		stored = n.LastReport
		return nil
	})
	if bytes.Contains(stored, []byte(workerTok)) || len(stored) == 0 {
		t.Errorf("stored report of %s holds the join token (or is empty): %s", founder, stored)
	}
	if strings.Contains(h.logs.String(), "SWMTKN") {
		t.Error("a join token reached the log")
	}
}

func TestRenew(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.putVM("w1", uuid1, mac1, "worker")
	n := newNode(t)
	_, resp := h.enroll(n, h.token("w1", time.Hour, time.Now()), uuid1)
	n.setCert(t, resp.Certificate)
	old := *n.cert
	var rr api.RenewResponse
	code, err := h.call(h.client(n), "POST", api.PathRenew, api.RenewRequest{CSR: n.csr(t)}, &rr)
	if err != nil || code != http.StatusOK || bytes.Equal(rr.Certificate, resp.Certificate) {
		t.Fatalf("renew: %d %v", code, err)
	}
	n.setCert(t, rr.Certificate)
	if code := h.report(n, api.Report{}); code != http.StatusNoContent {
		t.Errorf("renewed cert refused: %d", code)
	}
	oldNode := &node{key: n.key, cert: &old}
	if code := h.report(oldNode, api.Report{}); code != http.StatusForbidden {
		t.Errorf("superseded cert: %d, want 403", code)
	}
	// The server's TLS refuses a client whose certificate is not from the CA
	// before any handler runs (no HTTP status at all).
	c := h.client(nil)
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{}
	if code, _ := h.call(c, "POST", api.PathRenew, api.RenewRequest{CSR: n.csr(t)}, nil); code != http.StatusUnauthorized {
		t.Errorf("renew without cert: %d", code)
	}
}

// FuzzEnrollBody throws arbitrary bodies at the enroll handler: it must
// never panic and never issue anything (no token exists).
func FuzzEnrollBody(f *testing.F) {
	dir := f.TempDir()
	st, err := store.Open(filepath.Join(dir, store.FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	authority, err := ca.Open(filepath.Join(dir, "ca"))
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{Store: st, CA: authority}
	h := s.Handler()
	f.Add([]byte(`{"token":"abc","bios_uuid":"x","macs":["52:54:00:12:34:56"],"csr":"AQID"}`))
	f.Add([]byte(`{"token":"` + strings.Repeat("a", 43) + `","bios_uuid":"x","csr":"MIIBDTCBswIBADAAMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", api.PathEnroll, bytes.NewReader(body))
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			t.Fatalf("issued for %q", body)
		}
	})
}

func TestNewKeepsTheCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.Open(store.DefaultPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := New(dir, st, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(dir, st, "127.0.0.1")
	if err != nil || !bytes.Equal(a.CA.CertPEM, b.CA.CertPEM) {
		t.Fatalf("second start made another CA (err %v): images baked with the first would stop trusting the appliance", err)
	}
	cfg, err := a.TLSConfig()
	if err != nil || cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Fatalf("TLS config: %+v, %v", cfg, err)
	}
}

package enroll

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

type clearRec struct {
	mu  sync.Mutex
	vms []string
}

func (c *clearRec) ClearGuestinfo(_ context.Context, vm string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vms = append(c.vms, vm)
	return nil
}

type harness struct {
	t     *testing.T
	srv   *Server
	st    *store.Store
	url   string
	logs  *testlog.Buffer
	clear *clearRec
	skew  atomic.Int64 // added to the server's clock
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, authority := enrolltest.Open(t)
	logs := &testlog.Buffer{}
	h := &harness{t: t, st: st, logs: logs, clear: &clearRec{}}
	h.srv = &Server{Store: st, CA: authority, Hosts: []string{"127.0.0.1"}, Guestinfo: h.clear,
		Now: func() time.Time { return time.Now().Add(time.Duration(h.skew.Load())) },
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	h.url = enrolltest.Serve(t, h.srv)
	return h
}

// putVM records a VM swarmboot "created".
func (h *harness) putVM(name, uuid, mac, role string) {
	h.t.Helper()
	if err := h.st.Update(func(tx *store.Tx) error {
		return tx.PutVM(store.VM{Name: name, BIOSUUID: uuid, MAC: mac, Role: role})
	}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) token(vm string, ttl time.Duration, now time.Time) string {
	h.t.Helper()
	tok, err := NewToken(h.st, TokenFor{VM: vm}, ttl, now)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// node is a test agent: a key and, once enrolled, a certificate.
type node struct {
	key  *ecdsa.PrivateKey
	cert *tls.Certificate
}

func newNode(t *testing.T) *node {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &node{key: k}
}

func (n *node) csr(t *testing.T) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, n.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (n *node) setCert(t *testing.T, certPEM []byte) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		t.Fatal("certificate is not PEM")
	}
	n.cert = &tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: n.key}
}

// client returns an HTTPS client pinned to the appliance CA, presenting
// n's certificate when it has one.
func (h *harness) client(n *node) *http.Client {
	cfg := &tls.Config{RootCAs: h.srv.CA.Pool(), MinVersion: tls.VersionTLS13}
	if n != nil && n.cert != nil {
		cfg.Certificates = []tls.Certificate{*n.cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

// call does one request and decodes a 2xx JSON answer into out.
func (h *harness) call(c *http.Client, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.url+path, body)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 && resp.StatusCode != http.StatusNoContent && out != nil {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// enroll enrolls n with tok and the given identity; it returns the status.
func (h *harness) enroll(n *node, tok, uuid string, macs ...string) (int, api.EnrollResponse) {
	h.t.Helper()
	var resp api.EnrollResponse
	code, err := h.call(h.client(nil), "POST", api.PathEnroll, api.EnrollRequest{Token: tok, BIOSUUID: uuid, MACs: macs, CSR: n.csr(h.t)}, &resp)
	if err != nil {
		h.t.Fatal(err)
	}
	return code, resp
}

func (h *harness) report(n *node, r api.Report) int {
	h.t.Helper()
	code, err := h.call(h.client(n), "POST", api.PathReport, r, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return code
}

func (h *harness) plan(n *node) (int, api.Plan) {
	h.t.Helper()
	var p api.Plan
	code, err := h.call(h.client(n), "GET", api.PathPlan, nil, &p)
	if err != nil {
		h.t.Fatal(err)
	}
	return code, p
}

// issued counts nodes and "enroll" events: what a refusal must not change.
func (h *harness) issued() (nodes, enrollEvents int) {
	h.st.View(func(tx *store.Tx) error {
		ns, _ := tx.Nodes()
		nodes = len(ns)
		for _, mac := range []string{"52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:04"} {
			evs, _ := tx.Events(mac)
			for _, e := range evs {
				if e.Kind == "enroll" {
					enrollEvents++
				}
			}
		}
		return nil
	})
	return
}

func (h *harness) events(mac, kind string) int {
	h.t.Helper()
	return enrolltest.Events(h.t, h.st, mac, kind)
}

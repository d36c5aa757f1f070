// Package enrolltest runs the agent API (enroll.Server) in tests: Open
// makes its store and CA in a temporary directory, Serve runs it on
// loopback until the test ends, Events counts what it recorded, Enroll is
// an agent enrolling with a token.
//
//	st, authority := enrolltest.Open(t)
//	srv := &enroll.Server{Store: st, CA: authority, Hosts: []string{"127.0.0.1"}}
//	url := enrolltest.Serve(t, srv) // "https://127.0.0.1:PORT"
//
// It does not import package enroll (Serve takes an interface), so that
// package's own tests can use it without an import cycle. Only tests import
// it.
package enrolltest

import (
	"context"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// Open opens a store (store.FileName) and a CA (directory "ca") in a fresh
// temporary directory of tb. The store is closed when the test ends, after
// the servers Serve started later have stopped (cleanups run last first).
func Open(tb testing.TB) (*store.Store, *ca.CA) {
	tb.Helper()
	dir := tb.TempDir()
	st, err := store.Open(filepath.Join(dir, store.FileName))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	authority, err := ca.Open(filepath.Join(dir, "ca"))
	if err != nil {
		tb.Fatal(err)
	}
	return st, authority
}

// Server is what Serve runs; *enroll.Server is one.
type Server interface {
	Serve(ctx context.Context, l net.Listener) error
}

// Serve runs srv on a free port of 127.0.0.1 and returns its base URL,
// "https://127.0.0.1:PORT". When the test ends it cancels Serve, waits for
// it to return and reports an error it returned.
func Serve(tb testing.TB, srv Server) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("agent API Serve: %v", err)
		}
	})
	return "https://" + l.Addr().String()
}

// Events counts the events of kind recorded for mac in st (what a test
// asserts on: "one enroll", "two refusals").
func Events(tb testing.TB, st *store.Store, mac, kind string) int {
	tb.Helper()
	n := 0
	err := st.View(func(tx *store.Tx) error {
		evs, err := tx.Events(mac)
		for _, e := range evs {
			if e.Kind == kind {
				n++
			}
		}
		return err
	})
	if err != nil {
		tb.Fatalf("events of %s: %v", mac, err)
	}
	return n
}

// Enroll is an agent enrolling at the agent API at url (trusting the CA in
// caPEM) with token, as a machine with biosUUID and mac: a fresh identity
// in a temporary directory, the agent's own client, its certificate saved
// and idle connections dropped so the next request presents it. The test
// fails if the enrollment does.
func Enroll(tb testing.TB, url string, caPEM []byte, token, biosUUID, mac string) (*agent.Client, *agent.Identity, api.EnrollResponse) {
	tb.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		tb.Fatal("enrolltest: no CA certificate in caPEM")
	}
	id, err := agent.LoadIdentity(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	cl, err := agent.NewClient(url, "", roots, id)
	if err != nil {
		tb.Fatal(err)
	}
	csr, err := id.CSR()
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := cl.Enroll(tb.Context(), api.EnrollRequest{Token: token, BIOSUUID: biosUUID, MACs: []string{mac}, CSR: csr})
	if err != nil {
		tb.Fatalf("enroll %s with its token: %v", mac, err)
	}
	if err := id.SaveCert(resp.Certificate); err != nil {
		tb.Fatal(err)
	}
	cl.CloseIdle()
	return cl, id, resp
}

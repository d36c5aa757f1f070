package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/client"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/swarm"
)

// managerTLS makes dockerd also listen on tcp://127.0.0.1:2376 inside its
// namespace with --tlsverify (certificates from a throwaway CA), the way a
// site exposes an existing manager's Docker API, and returns the client
// files the appliance uses.
type managerTLS struct {
	caFile, certFile, keyFile string
}

func (m *managerTLS) setup(t testing.TB) func(d *dockerd) {
	return func(d *dockerd) {
		authority, err := ca.Open(filepath.Join(d.dir, "tlsca"))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := authority.ServerCert("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		write := func(name string, b []byte) string {
			p := filepath.Join(d.dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		keyPEM := func(k any) []byte {
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				t.Fatal(err)
			}
			return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		}
		m.caFile = write("ca.pem", authority.CertPEM)
		// The appliance's client certificate (client auth usage).
		ck, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, ck)
		csr, err := ca.ParseCSR(csrDER)
		if err != nil {
			t.Fatal(err)
		}
		cder, _, err := authority.SignNode(csr, "swarmboot-appliance")
		if err != nil {
			t.Fatal(err)
		}
		m.certFile, m.keyFile = write("client.pem", ca.PEM(cder)), write("client.key", keyPEM(ck))
		d.args = append(d.args, "-H", "tcp://127.0.0.1:2376", "--tlsverify",
			"--tlscacert", m.caFile, "--tlscert", write("server.pem", ca.PEM(srv.Certificate[0])), "--tlskey", write("server.key", keyPEM(srv.PrivateKey)))
	}
}

// remote connects the appliance to the manager's TLS Docker API; the
// socket is opened inside the manager's namespace (its loopback).
func (m *managerTLS) remote(t testing.TB, d *dockerd) *swarm.Remote {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := d.ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	r, err := swarm.NewRemote("tcp://127.0.0.1:2376", m.caFile, m.certFile, m.keyFile, client.WithDialContext(dial))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

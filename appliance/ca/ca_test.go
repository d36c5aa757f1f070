package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func csrFor(t *testing.T, curve elliptic.Curve) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func TestOpenCreatesThenReloads(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, err %v; want 0600", fi.Mode().Perm(), err)
	}
	c2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Cert.Equal(c.Cert) {
		t.Fatal("reopened CA has another certificate")
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
}

func TestSignNode(t *testing.T) {
	t.Parallel()
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Hour).Truncate(time.Second)
	c.Now = func() time.Time { return now }
	der, key := csrFor(t, elliptic.P256())
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	_, cert, err := c.SignNode(csr, "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "worker-1" {
		t.Errorf("CN %q: the CSR's subject must be ignored", cert.Subject.CommonName)
	}
	if got := cert.NotAfter.Sub(now); got != NodeValidity {
		t.Errorf("validity %v, want %v", got, NodeValidity)
	}
	if Fingerprint(cert.PublicKey) != Fingerprint(&key.PublicKey) {
		t.Error("certificate is not for the CSR's key")
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: c.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Errorf("node cert does not verify: %v", err)
	}
	other, _ := Open(t.TempDir())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: other.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("node cert verifies under another CA")
	}
}

func TestParseCSRRefuses(t *testing.T) {
	t.Parallel()
	der, _ := csrFor(t, elliptic.P384())
	if _, err := ParseCSR(der); !errors.Is(err, ErrCSR) {
		t.Errorf("P-384 accepted: %v", err)
	}
	der, _ = csrFor(t, elliptic.P256())
	der[len(der)-3] ^= 0xff // break the signature
	if _, err := ParseCSR(der); !errors.Is(err, ErrCSR) {
		t.Errorf("bad signature accepted: %v", err)
	}
	if _, err := ParseCSR([]byte("junk")); !errors.Is(err, ErrCSR) {
		t.Errorf("junk accepted: %v", err)
	}
}

func TestServerCert(t *testing.T) {
	t.Parallel()
	c, _ := Open(t.TempDir())
	sc, err := c.ServerCert("127.0.0.1", "appliance.local")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Leaf.Verify(x509.VerifyOptions{Roots: c.Pool(), DNSName: "appliance.local"}); err != nil {
		t.Fatal(err)
	}
	if err := sc.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
}

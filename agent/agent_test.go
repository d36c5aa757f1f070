package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenSourcesInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmdline := filepath.Join(dir, "cmdline")
	file := filepath.Join(dir, "token")
	os.WriteFile(cmdline, []byte("console=ttyS0 swarmboot.token=fromcmdline quiet\n"), 0o644)
	os.WriteFile(file, []byte("fromfile\nignored\n"), 0o600)
	notVMware := GuestinfoToken{IsVMware: func() bool { return false }}
	tok, from, err := FindToken(notVMware, CmdlineToken{Path: cmdline}, FileToken{Path: file})
	if err != nil || tok != "fromcmdline" || from != "kernel command line" {
		t.Fatalf("got %q from %q, %v; want the command line's", tok, from, err)
	}
	os.WriteFile(cmdline, []byte("console=ttyS0 quiet\n"), 0o644)
	tok, from, _ = FindToken(notVMware, CmdlineToken{Path: cmdline}, FileToken{Path: file})
	if tok != "fromfile" || !strings.HasPrefix(from, "file ") {
		t.Fatalf("got %q from %q; want the file's", tok, from)
	}
	os.Remove(file)
	_, _, err = FindToken(notVMware, CmdlineToken{Path: cmdline}, FileToken{Path: file})
	if err == nil || !strings.Contains(err.Error(), "swarmboot token create") {
		t.Fatalf("no token anywhere: %v", err)
	}
}

func TestGuestinfoNotTouchedOffVMware(t *testing.T) {
	t.Parallel()
	asked := false
	g := GuestinfoToken{IsVMware: func() bool { asked = true; return false }}
	tok, err := g.Token()
	if tok != "" || err != nil || !asked {
		t.Fatalf("off VMware: %q, %v (CPU checked: %v)", tok, err, asked)
	}
}

func TestBackoffCappedWithJitter(t *testing.T) {
	t.Parallel()
	max := 60 * time.Second
	seen := map[time.Duration]bool{}
	for n := range 40 {
		d := backoff(n, max)
		want := min(max, time.Second<<min(n, 29))
		if d < want/2 || d > want {
			t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, want/2, want)
		}
		seen[d] = true
	}
	if len(seen) < 30 {
		t.Errorf("only %d distinct waits in 40: no jitter?", len(seen))
	}
}

func TestIdentityKeptAndChecked(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	// A certificate for another key is refused.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := id.SaveCert(selfSigned(t, other)); err == nil {
		t.Error("certificate for another key accepted")
	}
	if err := id.SaveCert(selfSigned(t, id.Key)); err != nil {
		t.Fatal(err)
	}
	again, err := LoadIdentity(dir)
	if err != nil || again.Cert() == nil || !again.Key.Equal(id.Key) {
		t.Fatalf("reload after reboot: cert %v, same key %v, err %v", again.Cert() != nil, again.Key.Equal(id.Key), err)
	}
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("junk"), 0o600)
	if _, err := LoadIdentity(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("corrupt key: %v", err)
	}
}

func selfSigned(t *testing.T, key *ecdsa.PrivateKey) []byte {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "n"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pemCert(der)
}

func TestRedact(t *testing.T) {
	t.Parallel()
	err := redact(errors.New("join with SWMTKN-1-abc failed"), "SWMTKN-1-abc")
	if strings.Contains(err.Error(), "SWMTKN") {
		t.Fatalf("not redacted: %v", err)
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add("36 22 8:1 / /var/lib/docker rw,noatime shared:1 - ext4 /dev/sda1 rw\n")
	f.Add("1 2 0:1 / /a\\040b rw - tmpfs tmpfs rw\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseMountInfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			backing(ms, m.point+"/x")
		}
	})
}

func FuzzParseExtSuperblock(f *testing.F) {
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseExtSuperblock(b)
	})
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

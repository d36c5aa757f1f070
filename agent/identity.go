package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Files in the agent's state dir (on the persistent disk).
const (
	KeyFile  = "node.key"
	CertFile = "node.pem"
)

// DefaultStateDir is on Docker's persistent disk, so a reboot keeps the
// node's identity and skips enrollment.
const DefaultStateDir = "/var/lib/docker/swarmboot"

// BIOSUUID reads the SMBIOS system UUID (what vSphere calls the BIOS UUID).
func BIOSUUID(path string) (string, error) {
	if path == "" {
		path = "/sys/class/dmi/id/product_uuid"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("BIOS UUID: %w (the agent needs /sys and root)", err)
	}
	return strings.ToLower(strings.TrimSpace(string(b))), nil
}

// skipIface are interfaces that are not the machine's own NICs.
var skipIface = []string{"lo", "docker", "veth", "br-", "docker_gwbridge", "vxlan", "tun", "tap"}

// MACs lists the hardware addresses of the machine's NICs, sorted.
func MACs() []string {
	ifs, _ := net.Interfaces()
	var out []string
next:
	for _, i := range ifs {
		for _, p := range skipIface {
			if strings.HasPrefix(i.Name, p) {
				continue next
			}
		}
		if len(i.HardwareAddr) == 6 {
			out = append(out, i.HardwareAddr.String())
		}
	}
	sort.Strings(out)
	return out
}

// Identity is the node's key and certificate in the state dir.
type Identity struct {
	Dir string
	Key *ecdsa.PrivateKey

	mu   sync.Mutex
	cert *tls.Certificate // nil until enrolled
}

// Cert is the node certificate, nil until enrolled. Safe to call from
// TLS handshakes while the agent renews.
func (id *Identity) Cert() *tls.Certificate {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.cert
}

// Forget drops the certificate (the appliance refused it).
func (id *Identity) Forget() {
	id.mu.Lock()
	defer id.mu.Unlock()
	id.cert = nil
}

// LoadIdentity loads the key (creating it, mode 0600, when missing) and
// the certificate when there is one.
func LoadIdentity(dir string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	id := &Identity{Dir: dir}
	kp := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(kp)
	switch {
	case errors.Is(err, os.ErrNotExist):
		id.Key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(id.Key)
		if err != nil {
			return nil, err
		}
		if err := writeFileSync(kp, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("node key: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("node key: %w", err)
	default:
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("node key %s: not PEM; delete it to enroll again", kp)
		}
		if id.Key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("node key %s: %v; delete it to enroll again", kp, err)
		}
	}
	cb, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err == nil {
		if err := id.setCert(cb); err != nil {
			return nil, fmt.Errorf("node certificate %s: %v", filepath.Join(dir, CertFile), err)
		}
	}
	return id, nil
}

// CSR is a certificate request for the node key.
func (id *Identity) CSR() ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, id.Key)
}

// setCert installs a PEM certificate for the node key (not written).
func (id *Identity) setCert(certPEM []byte) error {
	blk, _ := pem.Decode(certPEM)
	if blk == nil {
		return errors.New("not PEM")
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	if pk, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !pk.Equal(&id.Key.PublicKey) {
		return errors.New("certificate is not for the node key")
	}
	id.mu.Lock()
	id.cert = &tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: id.Key, Leaf: leaf}
	id.mu.Unlock()
	return nil
}

// SaveCert checks and stores a certificate (PEM) for the node key.
func (id *Identity) SaveCert(certPEM []byte) error {
	if err := id.setCert(certPEM); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(id.Dir, CertFile), certPEM, 0o600)
}

// Expires is when the certificate runs out (zero without one).
func (id *Identity) Expires() time.Time {
	c := id.Cert()
	if c == nil {
		return time.Time{}
	}
	return c.Leaf.NotAfter
}

// writeFileSync writes via a temp file, fsync and rename.
func writeFileSync(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if err := writeSync(f, b); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeSync writes b to f, fsyncs and closes it; f is closed on every path.
func writeSync(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package api

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// Where the image builder bakes the appliance's public trust material.
const (
	TrustDir        = "/etc/swarmboot"
	TrustConfigFile = "appliance.json"
	TrustCAFile     = "ca.pem"
)

// TrustConfig is /etc/swarmboot/appliance.json:
//
//	{"url": "https://10.0.0.5:8443", "server_name": "swarmboot-appliance"}
//
// with the CA certificate beside it in ca.pem. Nothing in it is secret.
type TrustConfig struct {
	URL        string `json:"url"`                   // base URL of the agent API, https only
	ServerName string `json:"server_name,omitempty"` // TLS name to verify; default: the URL's host
	// Image is the image's version as the builder names it; the agent
	// reports it with every heartbeat (rotations wait for it).
	Image string `json:"image,omitempty"`
}

// Validate checks the URL is https with a host.
func (c *TrustConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("url: %v", err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("url %q: want https://HOST:PORT", c.URL)
	}
	if err := short("image", c.Image); err != nil {
		return err
	}
	return short("server_name", c.ServerName)
}

// LoadTrust reads appliance.json and ca.pem from dir (TrustDir in images).
func LoadTrust(dir string) (*TrustConfig, *x509.CertPool, error) {
	cfgPath := filepath.Join(dir, TrustConfigFile)
	f, err := os.Open(cfgPath)
	if err != nil {
		return nil, nil, fmt.Errorf("appliance trust: %w (the image builder bakes it in; was the image built for this site?)", err)
	}
	defer f.Close()
	var c TrustConfig
	if err := Decode(f, &c); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	caPath := filepath.Join(dir, TrustCAFile)
	b, err := os.ReadFile(caPath)
	if err != nil {
		return nil, nil, fmt.Errorf("appliance trust: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", caPath, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, nil, errors.New(caPath + ": no PEM certificate in it")
	}
	return &c, pool, nil
}

// TrustFiles returns what the image builder writes into an image: the
// absolute path of each trust file and its content. It checks the config
// and that caPEM holds certificates and nothing else: a PEM block of any
// other type (a private key pasted into the same file) is refused, and text
// outside the blocks is dropped, so ca.pem carries only certificates.
func TrustFiles(c TrustConfig, caPEM []byte) (map[string][]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("appliance trust: %w", err)
	}
	var certs []byte
	for rest := caPEM; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("appliance trust: the CA file holds a %q block; give the CA certificate only (never a key: images are not secret)", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, fmt.Errorf("appliance trust: CA: %w", err)
		}
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: blk.Type, Bytes: blk.Bytes})...)
	}
	if certs == nil {
		return nil, errors.New("appliance trust: the CA is not a PEM certificate")
	}
	cfg, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		filepath.Join(TrustDir, TrustConfigFile): append(cfg, '\n'),
		filepath.Join(TrustDir, TrustCAFile):     certs,
	}, nil
}

package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeRefusals(t *testing.T) {
	t.Parallel()
	good := `{"token":"abc","bios_uuid":"4211-aa","macs":["52:54:00:12:34:56"],"csr":"AQID"}`
	var ok EnrollRequest
	if err := Decode(strings.NewReader(good), &ok); err != nil {
		t.Fatalf("good request refused: %v", err)
	}
	if len(ok.CSR) != 3 || ok.MACs[0] != "52:54:00:12:34:56" {
		t.Fatalf("decoded wrong: %+v", ok)
	}
	for name, body := range map[string]string{
		"unknown field": `{"token":"abc","bios_uuid":"x","csr":"AQID","admin":true}`,
		"trailing":      good + `{}`,
		"no token":      `{"bios_uuid":"x","csr":"AQID"}`,
		"no csr":        `{"token":"abc","bios_uuid":"x"}`,
		"bad mac":       `{"token":"abc","bios_uuid":"x","macs":["zz"],"csr":"AQID"}`,
		"long token":    `{"token":"` + strings.Repeat("a", MaxTokenLen+1) + `","bios_uuid":"x","csr":"AQID"}`,
		"huge":          `{"token":"` + strings.Repeat("a", MaxBody) + `"}`,
		"control char":  `{"token":"abc","bios_uuid":"x\u0001","csr":"AQID"}`,
		"not json":      `token=abc`,
	} {
		var r EnrollRequest
		err := Decode(strings.NewReader(body), &r)
		if !errors.Is(err, ErrDecode) {
			t.Errorf("%s: got %v, want ErrDecode", name, err)
		}
	}
}

func TestReportRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	in := Report{Swarm: SwarmState{State: "active", NodeID: "n1"}, Disk: DiskReport{Path: "/var/lib/docker", Persistent: true, Formatted: FormattedPreExisting},
		JoinTokens: &ManagerPush{ClusterID: "c", Worker: "w", Manager: "m", Managers: []string{"10.77.0.2:2377"}}}
	if err := encodeJSON(&buf, in); err != nil {
		t.Fatal(err)
	}
	var out Report
	if err := Decode(&buf, &out); err != nil {
		t.Fatal(err)
	}
	if out.Swarm.NodeID != "n1" || !out.Disk.Persistent || out.JoinTokens.Managers[0] != "10.77.0.2:2377" {
		t.Fatalf("round trip lost data: %+v", out)
	}
	bad := in
	bad.JoinTokens = &ManagerPush{Managers: []string{"no-port"}}
	buf.Reset()
	_ = encodeJSON(&buf, bad)
	if err := Decode(&buf, &out); !errors.Is(err, ErrDecode) {
		t.Fatalf("manager without port accepted: %v", err)
	}
}

func TestLoadTrust(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := LoadTrust(dir); err == nil || !strings.Contains(err.Error(), "image builder") {
		t.Fatalf("missing trust: %v", err)
	}
	os.WriteFile(filepath.Join(dir, TrustConfigFile), []byte(`{"url":"http://x"}`), 0o644)
	os.WriteFile(filepath.Join(dir, TrustCAFile), []byte("junk"), 0o644)
	if _, _, err := LoadTrust(dir); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("http url accepted: %v", err)
	}
	os.WriteFile(filepath.Join(dir, TrustConfigFile), []byte(`{"url":"https://10.77.0.1:8443"}`), 0o644)
	if _, _, err := LoadTrust(dir); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("junk CA accepted: %v", err)
	}
	if _, err := TrustFiles(TrustConfig{URL: "https://10.77.0.1:8443"}, []byte("junk")); err == nil {
		t.Fatal("TrustFiles took a junk CA")
	}
	// What the builder writes is what the agent reads.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), IsCA: true, BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	files, err := TrustFiles(TrustConfig{URL: "https://10.77.0.1:8443", ServerName: "appliance"}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	img := t.TempDir()
	for p, b := range files {
		os.MkdirAll(filepath.Join(img, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(img, p), b, 0o644)
	}
	c, pool, err := LoadTrust(filepath.Join(img, TrustDir))
	if err != nil || c.ServerName != "appliance" || pool == nil {
		t.Fatalf("round trip: %+v %v", c, err)
	}
	// Only certificates reach ca.pem: a key in the same file is refused,
	// text around the blocks is dropped.
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kder, _ := x509.MarshalECPrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if _, err := TrustFiles(TrustConfig{URL: "https://10.77.0.1:8443"}, append(append([]byte(nil), certPEM...), keyPEM...)); err == nil || !strings.Contains(err.Error(), "EC PRIVATE KEY") {
		t.Fatalf("CA file with a key: %v", err)
	}
	files, err = TrustFiles(TrustConfig{URL: "https://10.77.0.1:8443"}, append([]byte("subject=CN = swarmboot CA\n"), certPEM...))
	if err != nil || !bytes.Equal(files[filepath.Join(TrustDir, TrustCAFile)], certPEM) {
		t.Fatalf("ca.pem = %q, %v; want the certificate alone", files[filepath.Join(TrustDir, TrustCAFile)], err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"token":"abc","bios_uuid":"x","macs":["52:54:00:12:34:56"],"csr":"AQID"}`))
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","swarm":{"state":"active"},"disk":{"path":"/var/lib/docker"},"join_tokens":{"managers":["a:1"]}}`))
	f.Add([]byte(`{"csr":"AQID"}`))
	f.Add([]byte(`{"action":"join","managers":["10.0.0.1:2377"]}`))
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","swarm":{"state":"active","control_available":true},"join_tokens":{"cluster_id":"c","worker":"w","manager":"m","managers":["10.77.0.11:2377"],"node_ids":["n1"],"nodes":[{"id":"n1","hostname":"lab-m1","role":"manager","state":"ready","availability":"active","addr":"10.77.0.11","leader":true,"engine_version":"20.10.24"},{"id":"n2","role":"worker","state":"down"}]}}`))
	f.Add([]byte(`{"join_tokens":{"managers":[],"nodes":[{"id":"n 1","role":"boss","state":"Ready"}]}}`))
	f.Add([]byte(`{"join_tokens":{"nodes":[{"id":"n1","role":"worker","state":"ready","availability":"drain","tasks":3,"tasks_known":true},{"id":"n2","role":"worker","state":"ready","tasks_known":true},{"id":"n3","role":"worker","state":"ready"}]}}`))
	f.Add([]byte(`{"join_tokens":{"nodes":[{"id":"n1","role":"worker","state":"ready","tasks":-1,"tasks_known":true},{"id":"n2","role":"worker","state":"ready","tasks":2}]}}`))
	f.Add([]byte(`{"ops":[{"id":"op-1a2b","node":"k3q5x9y2a1b0","do":"drain"},{"id":"op-2","node":"n2","do":"remove-force"}]}`))
	f.Add([]byte(`{"ops":[{"id":"op 1","node":"n1","do":"explode"},{"id":"op-1","node":"","do":"drain"}]}`))
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","swarm":{"state":"active"},"op_results":[{"id":"op-1","error":"node n1 not found","not_found":true},{"id":"op-2"}]}`))
	f.Add([]byte(`{"op_results":[{"id":"","error":"a\nb"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&EnrollRequest{}, &Report{}, &RenewRequest{}, &Plan{}, &EnrollResponse{}, &ReportAnswer{}} {
			if err := Decode(bytes.NewReader(b), v); err == nil {
				// Whatever is accepted must encode again and decode to
				// an accepted value (no state only half-valid).
				var buf bytes.Buffer
				if err := encodeJSON(&buf, v); err != nil {
					t.Fatalf("accepted %T does not encode: %v", v, err)
				}
				if len(b) > MaxBody {
					t.Fatalf("accepted %d bytes > MaxBody", len(b))
				}
				again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
				if err := Decode(&buf, again); err != nil {
					t.Fatalf("accepted %T does not decode again: %v", v, err)
				}
			} else if !errors.Is(err, ErrDecode) {
				t.Fatalf("refusal not ErrDecode: %v", err)
			}
		}
	})
}

func TestSameBIOSUUID(t *testing.T) {
	t.Parallel()
	vsphere := "421c5b3a-1d2e-4f60-8a9b-0c1d2e3f4a5b"
	for _, c := range []struct {
		guest string
		want  bool
	}{
		{vsphere, true},
		{"{421C5B3A-1D2E-4F60-8A9B-0C1D2E3F4A5B}", true},
		{"3a5b1c42-2e1d-604f-8a9b-0c1d2e3f4a5b", true}, // first three fields little-endian
		{"3a5b1c42-2e1d-604f-8a9b-0c1d2e3f4a5c", false},
		{"", false},
		{"not-a-uuid", false},
	} {
		if got := SameBIOSUUID(vsphere, c.guest); got != c.want {
			t.Errorf("SameBIOSUUID(%q) = %v, want %v", c.guest, got, c.want)
		}
	}
}

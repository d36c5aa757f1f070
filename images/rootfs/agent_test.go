package rootfs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/swarmboot/swarmboot/images/yml"
	"github.com/swarmboot/swarmboot/pkg/api"
)

func TestAgentBakeIn(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "swarmboot-agent")
	if err := os.WriteFile(bin, []byte("\x7fELF agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	ca := "-----BEGIN CERTIFICATE-----\n...\n"
	agent := &Agent{Binary: bin, Files: []yml.File{{Path: "etc/swarmboot/ca.pem", Contents: &ca, Mode: "0644"}}}
	base := "services:\n  - name: getty\n    image: test/tool:1\n"

	t.Run("added", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t)
		res, err := Assemble(context.Background(), loadTestYML(t, base), testImages(t), rec, Options{Agent: agent})
		if err != nil {
			t.Fatal(err)
		}
		dir := "containers/services/" + AgentName
		rec.mustFile(dir+"/lower/usr/bin/swarmboot-agent", "\x7fELF agent")
		rec.mustFile("etc/swarmboot/ca.pem", ca)
		var spec specs.Spec
		e, _ := rec.get(dir + "/config.json")
		if err := json.Unmarshal([]byte(e.data), &spec); err != nil {
			t.Fatal(err)
		}
		if spec.Process.Args[0] != AgentPath {
			t.Errorf("args = %v", spec.Process.Args)
		}
		binds := map[string]string{}
		for _, m := range spec.Mounts {
			binds[m.Destination] = m.Source + " " + strings.Join(m.Options, ",")
		}
		for dest, want := range map[string]string{
			"/var/run":        "/var/run rw,rbind,rshared",
			"/var/lib/docker": "/var/lib/docker rw,rbind,rshared",
			"/run/log/onboot": "/run/log/onboot ro,rbind",
			"/etc/swarmboot":  "/etc/swarmboot ro,rbind",
			"/dev":            "/dev rw,rbind,rshared",
		} {
			if binds[dest] != want {
				t.Errorf("bind %s = %q, want %q", dest, binds[dest], want)
			}
		}
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				t.Errorf("agent has its own network namespace; want host network")
			}
		}
		blockDevices := false // the disk report reads the ext4 superblock
		for _, d := range spec.Linux.Resources.Devices {
			blockDevices = blockDevices || (d.Allow && d.Type == "b" && d.Major == nil && d.Minor == nil && strings.Contains(d.Access, "r"))
		}
		if !blockDevices {
			t.Errorf("agent may not read block devices: %+v", spec.Linux.Resources.Devices)
		}
		if last := res.Images[len(res.Images)-1]; last.Ref != AgentBinaryRef || !strings.HasPrefix(last.Digest, "sha256:") {
			t.Errorf("agent image not recorded: %+v", res.Images)
		}
	})
	t.Run("opted out", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t)
		c := loadTestYML(t, base+"x-swarmboot:\n  agent: false\n")
		if _, err := Assemble(context.Background(), c, testImages(t), rec, Options{Agent: agent}); err != nil {
			t.Fatal(err)
		}
		rec.mustNot("containers/services/" + AgentName)
		rec.mustNot("etc/swarmboot/ca.pem")
		rec.mustType("containers/services/getty/config.json", 0)
	})
	t.Run("declared by the yml", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t)
		c := loadTestYML(t, base+"  - name: swarmboot-agent\n    image: test/tool:1\n    command: [\"/usr/bin/swarmboot-agent\", \"-v\"]\n")
		res, err := Assemble(context.Background(), c, testImages(t), rec, Options{Agent: agent})
		if err != nil {
			t.Fatal(err)
		}
		rec.mustType("containers/services/"+AgentName+"/config.json", 0)
		if n := rec.count("containers/services/" + AgentName + "/config.json"); n != 1 {
			t.Errorf("agent service written %d times", n)
		}
		if last := res.Images[len(res.Images)-1]; last.Ref != AgentBinaryRef {
			t.Errorf("the declared agent does not run this build's agent: %+v", res.Images)
		}
		rec.mustFile("containers/services/"+AgentName+"/lower/usr/bin/swarmboot-agent", "\x7fELF agent")
		var spec specs.Spec
		e, _ := rec.get("containers/services/" + AgentName + "/config.json")
		if err := json.Unmarshal([]byte(e.data), &spec); err != nil {
			t.Fatal(err)
		}
		if strings.Join(spec.Process.Args, " ") != "/usr/bin/swarmboot-agent -v" {
			t.Errorf("the yml's command was not kept: %v", spec.Process.Args)
		}
		if m := bindAt(spec, "/etc/swarmboot"); m == nil || m.Source != "/etc/swarmboot" || m.Options[0] != "ro" {
			t.Errorf("the declared agent cannot see its trust material: %+v", m)
		}
		rec.mustFile("etc/swarmboot/ca.pem", ca)
	})
	t.Run("declared with binds of its own", func(t *testing.T) {
		t.Parallel()
		rec := newRecorder(t)
		c := loadTestYML(t, base+"  - name: swarmboot-agent\n    image: test/tool:1\n    binds:\n      - /var/run:/var/run\n      - /srv/trust:/etc/swarmboot:ro\n")
		if _, err := Assemble(context.Background(), c, testImages(t), rec, Options{Agent: &Agent{Binary: bin}}); err != nil {
			t.Fatal(err)
		}
		var spec specs.Spec
		e, _ := rec.get("containers/services/" + AgentName + "/config.json")
		if err := json.Unmarshal([]byte(e.data), &spec); err != nil {
			t.Fatal(err)
		}
		if m := bindAt(spec, "/etc/swarmboot"); m == nil || m.Source != "/srv/trust" {
			t.Errorf("the yml's own /etc/swarmboot bind was replaced: %+v", m)
		}
		if bindAt(spec, "/var/run") == nil {
			t.Errorf("the yml's binds were dropped: %+v", spec.Mounts)
		}
		// No trust files given: the bind's source still exists in the image.
		rec.mustType("etc/swarmboot", fs.ModeDir)
	})
	t.Run("missing binary", func(t *testing.T) {
		t.Parallel()
		_, err := Assemble(context.Background(), loadTestYML(t, base), testImages(t), newRecorder(t), Options{Agent: &Agent{Binary: "/nonexistent/agent"}})
		if err == nil || !strings.Contains(err.Error(), "agent binary") {
			t.Errorf("err = %v", err)
		}
	})
}

func bindAt(spec specs.Spec, dest string) *specs.Mount {
	for i, m := range spec.Mounts {
		if m.Destination == dest {
			return &spec.Mounts[i]
		}
	}
	return nil
}

func TestTrustFiles(t *testing.T) {
	t.Parallel()
	if _, err := TrustFiles(api.TrustConfig{URL: "http://10.77.0.1"}, nil); err == nil || !strings.Contains(err.Error(), "https") {
		t.Errorf("http URL: err = %v", err)
	}
	certPEM := testCertPEM(t)
	files, err := TrustFiles(api.TrustConfig{URL: "https://10.77.0.1:8443"}, certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != "etc/swarmboot/appliance.json" || files[1].Path != "etc/swarmboot/ca.pem" {
		t.Fatalf("files = %+v", files)
	}
	for _, f := range files {
		if f.Mode != "0644" || f.Contents == nil {
			t.Errorf("%s: mode %q contents %v", f.Path, f.Mode, f.Contents)
		}
	}
	if *files[1].Contents != string(certPEM) || !strings.Contains(*files[0].Contents, "https://10.77.0.1:8443") {
		t.Errorf("contents: %q %q", *files[0].Contents, *files[1].Contents)
	}
}

func testCertPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), IsCA: true, BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

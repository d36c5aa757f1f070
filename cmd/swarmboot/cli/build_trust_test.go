package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/enroll"
	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/images/build/imageversion"
	"github.com/swarmboot/swarmboot/images/imagetest"
	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/cpio"
)

// readInitrd returns the regular files of a gzip'd newc initrd (name →
// content), its directories, and the whole uncompressed archive.
func readInitrd(t *testing.T, path string) (files map[string][]byte, dirs map[string]bool, raw []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err = io.ReadAll(zr); err != nil {
		t.Fatal(err)
	}
	files, dirs = map[string][]byte{}, map[string]bool{}
	r := cpio.NewReader(bytes.NewReader(raw))
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case h.Mode.IsDir():
			dirs[h.Name] = true
		case h.Mode.IsRegular():
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
	return files, dirs, raw
}

// TestBuildBakesTrust builds the fixture yml with a stand-in agent binary
// and --appliance-url, with the appliance's CA (key included) in the data
// dir, and reads the initrd back: the trust files are there and right, the
// agent's config.json binds them, and no key material is anywhere. A yml
// files[].source into the data dir is refused.
func TestBuildBakesTrust(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s, err := store.Open(filepath.Join(data, "images"))
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Populate(t, s)
	authority, err := ca.Open(enroll.CADir(data)) // as the appliance's first start does
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(enroll.CADir(data), ca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "swarmboot-agent")
	const agentBytes = "\x7fELF swarmboot-agent stand-in"
	if err := os.WriteFile(bin, []byte(agentBytes), 0o755); err != nil {
		t.Fatal(err)
	}
	y := imagetest.YML(t, "fixture.yml")
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"--data-dir", data, "build", "-f", y, "-o", out, "--format", "kernel+initrd",
		"--agent", bin, "--appliance-url", "https://10.77.0.1:8443", "--appliance-name", "appliance.test"},
		strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("build exit %d:\n%s", code, stderr.String())
	}
	files, dirs, raw := readInitrd(t, filepath.Join(out, "fixture-initrd.img"))
	// The version: printed on stdout, in fixture.version, in the image.
	version, err := build.ReadVersion(out, "fixture")
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != version+"\n" {
		t.Errorf("stdout %q, want the version %q alone", stdout.String(), version)
	}
	if got := string(files["etc/swarmboot/image-version"]); got != version+"\n" {
		t.Errorf("image-version in the image = %q, want %q", got, version)
	}

	var tc api.TrustConfig
	if err := json.Unmarshal(files["etc/swarmboot/appliance.json"], &tc); err != nil {
		t.Fatalf("appliance.json: %v (%q)", err, files["etc/swarmboot/appliance.json"])
	}
	if tc.URL != "https://10.77.0.1:8443" || tc.ServerName != "appliance.test" || tc.Image != "fixture" {
		t.Errorf("appliance.json = %+v", tc)
	}
	if !bytes.Equal(files["etc/swarmboot/ca.pem"], authority.CertPEM) {
		t.Errorf("ca.pem = %q, want the appliance CA certificate", files["etc/swarmboot/ca.pem"])
	}
	if string(files["etc/swarmboot/fixture"]) == "" {
		t.Error("the yml's own file under /etc/swarmboot is gone")
	}
	// The agent reads them as it would in the image.
	root := filepath.Join(dir, "root")
	for _, n := range []string{"appliance.json", "ca.pem"} {
		p := filepath.Join(root, api.TrustDir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, files["etc/swarmboot/"+n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := api.LoadTrust(filepath.Join(root, api.TrustDir)); err != nil {
		t.Errorf("the agent cannot load the baked trust: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, imageversion.Path), files["etc/swarmboot/image-version"], 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := imageversion.Resolve(filepath.Join(root, api.TrustDir), tc.Image); v != version || err != nil {
		t.Errorf("the agent would report %q (%v), want %q", v, err, version)
	}

	svc := "containers/services/" + rootfs.AgentName
	if string(files[svc+"/lower"+rootfs.AgentPath]) != agentBytes {
		t.Errorf("agent binary not baked in at %s", svc+"/lower"+rootfs.AgentPath)
	}
	var spec specs.Spec
	if err := json.Unmarshal(files[svc+"/config.json"], &spec); err != nil {
		t.Fatalf("agent config.json: %v", err)
	}
	var bound bool
	for _, m := range spec.Mounts {
		if m.Destination == api.TrustDir {
			bound = m.Type == "bind" && m.Source == api.TrustDir && len(m.Options) > 0 && m.Options[0] == "ro"
		}
	}
	if !bound {
		t.Errorf("agent config.json does not bind %s read-only: %+v", api.TrustDir, spec.Mounts)
	}
	if !dirs["etc/swarmboot"] {
		t.Error("no etc/swarmboot directory entry")
	}

	// No private key material anywhere in the image.
	if bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Error(`the initrd contains "PRIVATE KEY"`)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil || bytes.Contains(raw, blk.Bytes) {
		t.Error("the initrd contains the CA key")
	}
	for _, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") && bytes.Contains(raw, []byte(line)) {
			t.Errorf("the initrd contains a line of the CA key: %q", line)
		}
	}

	// A yml that reads from the data dir is refused, and nothing is written.
	leak := filepath.Join(dir, "leak.yml")
	if err := os.WriteFile(leak, []byte("files:\n  - path: etc/leak\n    source: "+filepath.Join(enroll.CADir(data), ca.KeyFile)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "out2")
	stderr.Reset()
	if code := Main(context.Background(), []string{"--data-dir", data, "build", "-f", y, "-f", leak, "-o", out2, "--format", "kernel+initrd", "--agent", bin},
		strings.NewReader(""), &stdout, &stderr); code == 0 {
		t.Fatal("a build reading the CA key from the data dir succeeded")
	}
	if msg := stderr.String(); !strings.Contains(msg, "etc/leak") || !strings.Contains(msg, "holds swarmboot's secrets") {
		t.Errorf("refusal does not say what and why:\n%s", msg)
	}
	if _, err := os.Stat(filepath.Join(out2, "fixture-initrd.img")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("initrd written despite the refusal: %v", err)
	}
}

// TestBuildTrustFlags checks the refusals that come before any image is
// read, and that --ca overrides the data dir's CA.
func TestBuildTrustFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	y := filepath.Join(dir, "w.yml")
	if err := os.WriteFile(y, []byte("kernel:\n  image: example.org/kernel:1\ninit:\n  - example.org/init:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noAgent := filepath.Join(dir, "no-agent.yml")
	if err := os.WriteFile(noAgent, []byte("x-swarmboot:\n  agent: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	authority, err := ca.Open(filepath.Join(dir, "other-ca"))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "other-ca", ca.CertFile)
	keyFile := filepath.Join(dir, "other-ca", ca.KeyFile)
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	both := filepath.Join(dir, "cert-and-key.pem")
	if err := os.WriteFile(both, append(append([]byte(nil), authority.CertPEM...), keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "agent")
	if err := os.WriteFile(bin, []byte("agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no CA yet", []string{"--appliance-url", "https://10.77.0.1:8443", "--agent", bin},
			[]string{"no appliance CA at", "appliance run", "--ca FILE"}},
		{"http URL", []string{"--appliance-url", "http://10.77.0.1:8080", "--ca", caFile, "--agent", bin},
			[]string{"--appliance-url", "https://HOST:PORT"}},
		{"key in the CA file", []string{"--appliance-url", "https://10.77.0.1:8443", "--ca", both, "--agent", bin},
			[]string{"cert-and-key.pem", "EC PRIVATE KEY", "never a key"}},
		{"the key itself", []string{"--appliance-url", "https://10.77.0.1:8443", "--ca", keyFile, "--agent", bin},
			[]string{"ca.key", "EC PRIVATE KEY"}},
		{"--ca alone", []string{"--ca", caFile}, []string{"go with --appliance-url"}},
		{"no agent service", []string{"--appliance-url", "https://10.77.0.1:8443", "--ca", caFile},
			[]string{"no swarmboot-agent service", "--agent"}},
		{"opted out", []string{"-f", noAgent, "--appliance-url", "https://10.77.0.1:8443", "--ca", caFile, "--agent", bin},
			[]string{"opts out of the agent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"--data-dir", filepath.Join(t.TempDir(), "data"), "build", "-f", y, "-o", filepath.Join(t.TempDir(), "out")}, tc.args...)
			if code := Main(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code == 0 {
				t.Fatal("exit 0")
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "is not in the image store") {
				t.Errorf("refused only after looking for images:\n%s", stderr.String())
			}
		})
	}

	var help, herr bytes.Buffer
	Main(context.Background(), []string{"build", "--help"}, strings.NewReader(""), &help, &herr)
	for _, w := range []string{"--agent bin/swarmboot-agent", "--appliance-url https://", "--ca FILE", "/etc/swarmboot/ca.pem"} {
		if !strings.Contains(help.String(), w) {
			t.Errorf("build --help lacks %q", w)
		}
	}

	// --ca FILE is what gets baked, not the data dir's CA.
	data := filepath.Join(dir, "data")
	if _, err := ca.Open(enroll.CADir(data)); err != nil {
		t.Fatal(err)
	}
	g := &Globals{DataDir: data}
	cfg := &yml.Config{}
	files, err := trustFlags{url: "https://10.77.0.1:8443", caFile: caFile}.files(g, cfg, "w")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, f := range files {
		if f.Path == "etc/swarmboot/ca.pem" {
			got = *f.Contents
		}
	}
	if got != string(authority.CertPEM) {
		t.Errorf("--ca: baked %q, want %s", got, caFile)
	}
}

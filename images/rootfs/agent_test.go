package rootfs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/swarmboot/swarmboot/images/yml"
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
		rec.mustFile("etc/swarmboot/ca.pem", ca)
	})
	t.Run("missing binary", func(t *testing.T) {
		t.Parallel()
		_, err := Assemble(context.Background(), loadTestYML(t, base), testImages(t), newRecorder(t), Options{Agent: &Agent{Binary: "/nonexistent/agent"}})
		if err == nil || !strings.Contains(err.Error(), "agent binary") {
			t.Errorf("err = %v", err)
		}
	})
}

package rootfs

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/swarmboot/swarmboot/images/yml"
)

// TestAssembleWorkerYML assembles linuxkit/worker.yml with stand-in images
// under its real references (the real ones cannot be fetched here).
func TestAssembleWorkerYML(t *testing.T) {
	t.Parallel()
	c, err := yml.Load("../../linuxkit/worker.yml")
	if err != nil {
		t.Fatal(err)
	}
	fake := testImages(t)
	src := memSource{}
	for _, ref := range yml.ImageRefs(c) {
		src[ref] = image(t, v1.Config{Cmd: []string{"/bin/true"}}, layer(t, te{name: "bin/true", data: ref}))
	}
	src[c.Kernel.Image] = fake["test/kernel:1"]
	rec := newRecorder(t)
	src["swarmboot/agent:build"] = image(t, v1.Config{Entrypoint: []string{AgentPath}}, layer(t, te{name: "usr/bin/swarmboot-agent", data: "AGENT"}))
	res, err := Assemble(context.Background(), c, src, rec, Options{Agent: &Agent{Image: "swarmboot/agent:build"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != len(yml.ImageRefs(c)) || res.Images[len(res.Images)-1].Ref != "swarmboot/agent:build" {
		t.Errorf("images = %+v; want the yml's, the agent replaced by the build's", res.Images)
	}
	rec.mustFile("containers/services/swarmboot-agent/lower/usr/bin/swarmboot-agent", "AGENT")
	for _, d := range []string{"onboot/000-sysctl", "onboot/001-format", "onboot/002-mount", "services/open-vm-tools",
		"services/getty", "services/dhcpcd", "services/sshd", "services/docker", "services/swarmboot-agent"} {
		rec.mustType("containers/"+d+"/config.json", 0)
	}
	var spec specs.Spec
	e, _ := rec.get("containers/services/docker/config.json")
	if err := json.Unmarshal([]byte(e.data), &spec); err != nil {
		t.Fatal(err)
	}
	if env := strings.Join(spec.Process.Env, " "); !strings.Contains(env, "DOCKER_RAMDISK=true") || !strings.Contains(env, "PATH=/usr/local/sbin:") || len(spec.Process.Capabilities.Bounding) < 40 {
		t.Errorf("docker: env %v caps %d", spec.Process.Env, len(spec.Process.Capabilities.Bounding))
	}
	rec.mustType("var/lib/docker", fs.ModeDir)
	if _, err := os.Stat("../../linuxkit/authorized_keys"); err != nil {
		rec.mustNot("root/.ssh/authorized_keys") // optional: skipped while the site has not put its keys there
	} else {
		rec.mustType("root/.ssh/authorized_keys", 0)
	}
}

package yml

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// TestWorkerYML checks the site's worker image definition: it parses, every
// image is pinned by a tag (never latest), and it has the parts the site needs.
func TestWorkerYML(t *testing.T) {
	t.Parallel()
	c, err := Load("../../linuxkit/worker.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range ImageRefs(c) {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if !strings.Contains(ref, ":") || strings.HasSuffix(ref, ":latest") || r.Identifier() == "latest" {
			t.Errorf("image %s is not pinned by a tag", ref)
		}
	}
	var init []string
	for _, r := range c.Init {
		init = append(init, strings.SplitN(r, ":", 2)[0])
	}
	if strings.Join(init, " ") != "linuxkit/init linuxkit/runc linuxkit/containerd linuxkit/ca-certificates" {
		t.Errorf("init = %v", init)
	}
	names := func(imgs []*Image) string {
		var n []string
		for _, i := range imgs {
			n = append(n, i.Name)
		}
		return strings.Join(n, " ")
	}
	if got := names(c.Onboot); got != "sysctl format mount" {
		t.Errorf("onboot = %s", got)
	}
	if cmd := strings.Join(*c.Onboot[2].Command, " "); !strings.HasSuffix(cmd, "/var/lib/docker") {
		t.Errorf("mount command = %s", cmd)
	}
	if got := names(c.Services); got != "open-vm-tools getty dhcpcd sshd docker swarmboot-agent" {
		t.Errorf("services = %s", got)
	}
	agent := c.Services[5]
	if agent.Net != "host" || !strings.Contains(strings.Join(*agent.BindsAdd, " "), "/run/log/onboot:/run/log/onboot:ro") {
		t.Errorf("agent = %+v", agent.ImageConfig)
	}
	found := false
	for _, f := range c.Files {
		if f.Path == "root/.ssh/authorized_keys" && f.Mode == "0600" && f.Source != "" {
			found = true
		}
	}
	if !found {
		t.Error("no root/.ssh/authorized_keys from files")
	}
	if c.Kernel.Image == "" || c.Kernel.Cmdline == "" {
		t.Errorf("kernel = %+v", c.Kernel)
	}
}

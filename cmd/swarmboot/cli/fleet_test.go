package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmboot/swarmboot/appliance/vsphere"
	"github.com/swarmboot/swarmboot/pkg/testlog"
)

// fleetRun runs the CLI with args; the logger and the progress lines both
// write to stderr, concurrently.
func fleetRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb testlog.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestApplySimulateWait(t *testing.T) {
	code, out, errs := fleetRun(t, "--data-dir", t.TempDir(), "apply", "--simulate", "--wait")
	if code != 0 {
		t.Fatalf("apply --simulate: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{`+ vm "tf-sw-m1"`, "Plan: 4 to add", "Apply complete: 4 added", "instance_ips = {", `"tf-sw-3" = "192.0.2.`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "Simulated vCenter") {
		t.Errorf("simulation not announced: %s", errs)
	}
}

// TestFleetCommandsAgainstAvCenter drives push, plan, apply and destroy
// through a site file at a (simulated) vCenter, as an operator would.
func TestFleetCommandsAgainstAvCenter(t *testing.T) {
	sim, err := vsphere.StartSim()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker.iso"), bytes.Repeat([]byte("x"), 4096), 0o644)
	siteFile := filepath.Join(dir, "swarmboot.yml")
	os.WriteFile(siteFile, []byte(fmt.Sprintf(`vcenter:
  url: %s
  user: %s
  ca: %s
datacenter: DC0
resource_pool: DC0_C0/Resources
datastore: LocalDS_0
network: VM Network
folder: TERRAFORM/Linux/linuxkit-dev
groups:
  - name: workers
    pattern: tf-sw-{n}
    count: 2
    image: docker.iso
`, sim.VCenter.URL, sim.VCenter.User, sim.VCenter.CA)), 0o600)
	t.Setenv("SWARMBOOT_VSPHERE_PASSWORD", sim.VCenter.Password)
	data := t.TempDir()
	base := []string{"--data-dir", data, "--log-level", "debug"}

	// Without a resource pool the error lists the pools that exist.
	noPool := filepath.Join(dir, "nopool.yml")
	raw, _ := os.ReadFile(siteFile)
	os.WriteFile(noPool, []byte(strings.Replace(string(raw), "resource_pool: DC0_C0/Resources\n", "", 1)), 0o600)
	code, _, errs := fleetRun(t, append(base, "plan", "--site", noPool)...)
	if code != 1 || !strings.Contains(errs, "resource_pool") || !strings.Contains(errs, "/DC0/host/DC0_C0/Resources") {
		t.Fatalf("plan without a resource pool: exit %d, %q", code, errs)
	}
	code, out, errs := fleetRun(t, append(base, "push", "--site", siteFile, filepath.Join(dir, "docker.iso"))...)
	if code != 0 || !strings.HasPrefix(out, "[LocalDS_0] swarmboot/docker-") {
		t.Fatalf("push: exit %d, %q %q", code, out, errs)
	}
	if code, _, errs = fleetRun(t, append(base, "push", "--site", siteFile, filepath.Join(dir, "docker.iso"))...); code != 0 || !strings.Contains(errs, "not uploaded") {
		t.Fatalf("second push: exit %d, %q", code, errs)
	}
	if code, out, errs = fleetRun(t, append(base, "plan", "--site", siteFile)...); code != 2 || !strings.Contains(out, "Plan: 2 to add") {
		t.Fatalf("plan before apply: exit %d (want 2)\n%s%s", code, out, errs)
	}
	if code, out, errs = fleetRun(t, append(base, "apply", "--parallel", "1", "--site", siteFile)...); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out, "+ image") {
		t.Errorf("apply pushed again an ISO already on the datastore:\n%s", out)
	}
	if code, out, _ = fleetRun(t, append(base, "plan", "--site", siteFile)...); code != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("plan after apply: exit %d (want 0)\n%s", code, out)
	}
	code, out, errs = fleetRun(t, append(base, "destroy", "--site", siteFile, "tf-sw-2")...)
	if code != 1 || !strings.Contains(out, `- vm "tf-sw-2"`) || !strings.Contains(errs, "--yes") {
		t.Fatalf("destroy without --yes: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs = fleetRun(t, append(base, "destroy", "--site", siteFile, "--yes", "tf-sw-2")...); code != 0 || !strings.Contains(out, "1 destroyed") {
		t.Fatalf("destroy --yes: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ = fleetRun(t, append(base, "plan", "--site", siteFile)...); code != 2 || !strings.Contains(out, `+ vm "tf-sw-2"`) {
		t.Fatalf("plan after destroy: exit %d\n%s", code, out)
	}
	t.Setenv("SWARMBOOT_VSPHERE_PASSWORD", "wrong")
	code, _, errs = fleetRun(t, append(base, "plan", "--site", siteFile)...)
	if code != 1 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "rejected") {
		t.Fatalf("wrong password: exit %d, stderr %q (want one line)", code, errs)
	}
}

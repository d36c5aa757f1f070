package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

var (
	labOnce                          sync.Once
	labKernel, labInitrdPath, labCmd string
	labDir                           string
	labErr                           error
)

// TestMain removes the artifacts buildLab shares between tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if labDir != "" {
		os.RemoveAll(labDir)
	}
	os.Exit(code)
}

// buildLab synthesizes the lab images into a fresh store and builds
// linuxkit/lab.yml with the real builder (once per test binary); it returns
// the artifacts directory (lab-kernel, lab-initrd.img, lab-cmdline), the
// kernel, the initrd and the image's command line.
func buildLab(t *testing.T, ctx context.Context) (dir, kernel, initrd, cmdline string) {
	t.Helper()
	labOnce.Do(func() {
		labDir, labErr = os.MkdirTemp("", "swarmboot-labtest-")
		if labErr != nil {
			return
		}
		var s *store.Store
		if s, labErr = store.Open(filepath.Join(labDir, "store")); labErr != nil {
			return
		}
		start := time.Now()
		if _, labErr = Images(ctx, s, filepath.Join(labDir, "stage")); labErr != nil {
			return
		}
		os.RemoveAll(filepath.Join(labDir, "stage"))
		t.Logf("lab images synthesized in %v", time.Since(start).Round(time.Millisecond))
		var cfg *yml.Config
		if cfg, labErr = yml.Load("../../linuxkit/lab.yml"); labErr != nil {
			return
		}
		out := filepath.Join(labDir, "out")
		start = time.Now()
		m, err := build.Build(ctx, build.FromYML(cfg, s, ""), build.Options{Name: "lab", OutDir: out, Formats: []string{build.FormatKernelInitrd}})
		if labErr = err; err != nil {
			return
		}
		for _, a := range m.Artifacts {
			if a.Kind == "initrd" {
				t.Logf("lab initrd %.1f MiB gzip'd, built in %v", float64(a.Size)/(1<<20), time.Since(start).Round(time.Millisecond))
			}
		}
		labKernel, labInitrdPath, labCmd = filepath.Join(out, "lab-kernel"), filepath.Join(out, "lab-initrd.img"), m.Cmdline
	})
	if labErr != nil {
		t.Fatal(labErr)
	}
	return filepath.Dir(labKernel), labKernel, labInitrdPath, labCmd
}

// emptyDisk returns a sparse raw disk of size bytes.
func emptyDisk(t *testing.T, size int64) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "docker.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, size); err != nil {
		t.Fatal(err)
	}
	return disk
}

var selftestRE = regexp.MustCompile(`SWARMBOOT-LAB-SELFTEST docker=(\S+) after (\d+)s(.*)`)

// TestLabBoot builds linuxkit/lab.yml from the synthesized lab images with
// the real builder and boots it in QEMU twice on one disk: the first boot
// formats the empty disk and dockerd (a runc service) answers with
// /var/lib/docker on it and makes a one-node swarm; the second boot finds
// the file system and keeps it, and the swarm is still there.
func TestLabBoot(t *testing.T) {
	needApt(t)
	if err := qemu.Check(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, kernel, initrd, cmdline := buildLab(t, ctx)
	disk := emptyDisk(t, 1<<30)
	swarmInit := []string{"swarm-init=done", "swarm-init=skipped"}
	for i, want := range []string{"FORMATTED=yes", "FORMATTED=no"} {
		start := time.Now()
		vm, err := qemu.Start(ctx, qemu.Config{Kernel: kernel, Initrd: initrd, Disks: []string{disk},
			Append: cmdline + " swarmboot.selftest=poweroff", MemoryMiB: 1536})
		if err != nil {
			t.Fatal(err)
		}
		line, err := vm.WaitFor(ctx, selftestRE)
		if err != nil {
			vm.Stop()
			t.Fatalf("boot %d: %v\nserial:\n%s", i+1, err, vm.Output())
		}
		m := selftestRE.FindStringSubmatch(line)
		t.Logf("boot %d: %s (%v after power-on)", i+1, line, time.Since(start).Round(time.Millisecond))
		if m[1] == "none" || !strings.Contains(m[3], "PERSISTENT=yes") || !strings.Contains(m[3], want) {
			t.Errorf("boot %d: docker=%s disk=%q, want a version and PERSISTENT=yes %s\nserial:\n%s", i+1, m[1], m[3], want, vm.Output())
		}
		info, err := vm.WaitFor(ctx, regexp.MustCompile(`SWARMBOOT-LAB-INFO|Error`))
		// Boot 1 makes a one-node swarm (the ingress network needs vxlan,
		// IPVS and iptables from the lab kernel); boot 2 finds it on disk.
		for _, w := range []string{"root=/var/lib/docker", "swarm=active", swarmInit[i], "ingress"} {
			if err != nil || !strings.Contains(info, w) {
				t.Errorf("boot %d: docker info %q lacks %s (%v)", i+1, info, w, err)
			}
		}
		t.Logf("boot %d: %s", i+1, info)
		select {
		case <-vm.Done():
		case <-ctx.Done():
		}
		vm.Stop()
		if out, err := exec.Command("blkid", "-o", "value", "-s", "TYPE", disk).Output(); err == nil && strings.TrimSpace(string(out)) != "ext4" {
			t.Errorf("boot %d: the disk holds %q after power-off, want ext4", i+1, out)
		}
		if t.Failed() {
			t.Logf("serial:\n%s", vm.Output())
			return
		}
	}
}

package lab

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/cpio"
	"github.com/swarmboot/swarmboot/pkg/debfix"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

// labInitrd lays out an initramfs the way the builder does for
// linuxkit/lab.yml: init image flattened at /, kernel modules, the format
// step as containers/onboot/000-format and the engine as
// containers/services/docker.
func labInitrd(t *testing.T, ctx context.Context, k *debfix.Kernel) string {
	t.Helper()
	st, err := StageAll(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root, err := st.InitTree()
	if err != nil {
		t.Fatal(err)
	}
	mods, err := KernelModules(k, EngineModules...)
	if err != nil {
		t.Fatal(err)
	}
	root.Merge(mods)
	format, err := st.FormatTree()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := st.EngineTree()
	if err != nil {
		t.Fatal(err)
	}
	fcfg, err := privilegedSpec("format", []string{"/format.sh"}, true, "/var:/var:rshared,rbind", "/run:/run:rshared,rbind")
	if err != nil {
		t.Fatal(err)
	}
	root.Graft("containers/onboot/000-format/rootfs", format)
	root.File("containers/onboot/000-format/config.json", 0o644, fcfg)
	dcfg, err := privilegedSpec("docker", []string{"/usr/sbin/dockerd", "--iptables=true"}, false,
		"/var/lib/docker:/var/lib/docker:rshared,rbind", "/run:/run:rshared,rbind", "/lib/modules:/lib/modules:rbind,ro",
		"/etc/resolv.conf:/etc/resolv.conf:bind,ro")
	if err != nil {
		t.Fatal(err)
	}
	root.Graft("containers/services/docker/rootfs", engine)
	root.File("containers/services/docker/config.json", 0o644, dcfg)
	root.File("containers/services/docker/runtime.json", 0o644, []byte(`{"mkdir": ["/var/lib/docker"]}`))

	p := filepath.Join(t.TempDir(), "lab.cpio")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := cpio.NewWriter(bw)
	if err := root.WriteCPIO(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(p)
	t.Logf("lab initrd: %d entries, %.1f MiB uncompressed", len(root.Names()), float64(st2.Size())/(1<<20))
	return p
}

var selftestRE = regexp.MustCompile(`SWARMBOOT-LAB-SELFTEST docker=(\S+) after (\d+)s(.*)`)

// TestLabBoot boots the Debian kernel with the lab content in QEMU twice on
// one disk: the first boot formats the empty disk and dockerd (a runc
// service bundle) answers with /var/lib/docker on it; the second boot finds
// the file system and keeps it.
func TestLabBoot(t *testing.T) {
	needApt(t)
	if err := qemu.Check(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	initrd := labInitrd(t, ctx, k)
	disk := filepath.Join(t.TempDir(), "docker.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 1<<30); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"FORMATTED=yes", "FORMATTED=no"} {
		start := time.Now()
		vm, err := qemu.Start(ctx, qemu.Config{Kernel: k.Vmlinuz, Initrd: initrd, Disks: []string{disk},
			Append: "swarmboot.selftest=poweroff", MemoryMiB: 1536})
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
		if err != nil || !strings.Contains(info, "root=/var/lib/docker") {
			t.Errorf("boot %d: docker info: %q %v", i+1, info, err)
		}
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

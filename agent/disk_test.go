package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

func TestParseMountInfo(t *testing.T) {
	t.Parallel()
	in := `22 1 0:21 / / rw,relatime - rootfs rootfs rw
36 22 8:1 / /var/lib/docker rw,noatime shared:1 - ext4 /dev/sda1 rw
37 36 0:30 / /var/lib/docker/with\040space rw - tmpfs tmpfs rw
`
	ms, err := parseMountInfo(strings.NewReader(in))
	if err != nil || len(ms) != 3 {
		t.Fatalf("parsed %d mounts, err %v", len(ms), err)
	}
	m, _ := backing(ms, "/var/lib/docker/volumes")
	if m.point != "/var/lib/docker" || m.source != "/dev/sda1" || m.major != 8 || m.minor != 1 {
		t.Errorf("backing = %+v", m)
	}
	m, _ = backing(ms, "/var/lib/docker/with space/x")
	if m.fstype != "tmpfs" {
		t.Errorf("escaped mount point not matched: %+v", m)
	}
	m, _ = backing(ms, "/var/lib/dockerx")
	if m.point != "/" {
		t.Errorf("/var/lib/dockerx matched %q", m.point)
	}
}

func TestParseExtSuperblock(t *testing.T) {
	t.Parallel()
	if _, err := parseExtSuperblock(make([]byte, 1024)); err == nil {
		t.Fatal("zero block accepted as ext superblock")
	}
}

// mkfsMount makes an ext4 image (fake mkfs time when old is set), mounts it
// on a loop device and returns the mount point.
func mkfsMount(t *testing.T, old bool) string {
	t.Helper()
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	mkfs := exec.Command("mkfs.ext4", "-q", "-F", "-L", "sbdata", img, "16M")
	if old {
		mkfs.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME=978307200") // 2001-01-01
	}
	if out, err := mkfs.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount (no loop devices?): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install e2fsprogs util-linux)", tool)
		}
	}
}

func TestDiskReportFreshOldTmpfs(t *testing.T) {
	needRoot(t, "mkfs.ext4", "mount", "umount")
	t.Parallel()
	var d Disk
	fresh := d.Report(mkfsMount(t, false), "", "")
	old := d.Report(mkfsMount(t, true), "", "")

	tmp := filepath.Join(t.TempDir(), "tmp")
	os.Mkdir(tmp, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", tmp).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", tmp).Run() })
	ram := d.Report(tmp, "", "")

	for name, r := range map[string]api.DiskReport{"fresh": fresh, "old": old} {
		if !r.BlockDevice || !r.Persistent || r.FSType != "ext4" || !strings.HasPrefix(r.Device, "/dev/loop") {
			t.Errorf("%s: not seen as a persistent ext4 loop disk: %+v", name, r)
		}
		if r.Label != "sbdata" || len(r.UUID) != 36 || !r.ProbeOK || r.SizeBytes < 10<<20 || r.Inodes == 0 {
			t.Errorf("%s: label/uuid/probe/statfs wrong: %+v", name, r)
		}
	}
	if fresh.Formatted != api.FormattedThisBoot || time.Since(fresh.MkfsTime) > time.Hour {
		t.Errorf("fresh: formatted %q at %v, want this-boot", fresh.Formatted, fresh.MkfsTime)
	}
	if old.Formatted != api.FormattedPreExisting || old.MkfsTime.Year() != 2001 {
		t.Errorf("old: formatted %q at %v, want pre-existing (2001)", old.Formatted, old.MkfsTime)
	}
	if ram.BlockDevice || ram.Persistent || ram.FSType != "tmpfs" || ram.Formatted != api.FormattedUnknown || len(ram.Problems) == 0 || !ram.ProbeOK {
		t.Errorf("tmpfs: %+v", ram)
	}
	if !strings.Contains(strings.Join(ram.Problems, " "), "RAM") {
		t.Errorf("tmpfs report does not say Docker's data is in RAM: %q", ram.Problems)
	}
}

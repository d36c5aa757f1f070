package iso

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2024, 5, 6, 7, 8, 10, 0, time.UTC)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install mtools dosfstools xorriso)", tool)
		}
	}
}

// TestFATReadBack writes an image and reads it back with fsck.fat and
// mtools: names (short and long), contents, sizes, dates.
func TestFATReadBack(t *testing.T) {
	t.Parallel()
	need(t, "fsck.fat", "mcopy", "mdir")
	dir := t.TempDir()
	big := make([]byte, 3<<20+17)
	rand.Read(big)
	bigPath := filepath.Join(dir, "big")
	if err := os.WriteFile(bigPath, big, 0o644); err != nil {
		t.Fatal(err)
	}
	files := []*File{
		{Path: "/EFI/BOOT/BOOTX64.EFI", Data: []byte("efi")},
		{Path: "/loader/loader.conf", Data: []byte("default swarmboot.conf\n")},
		{Path: "/loader/entries/swarmboot.conf", Data: []byte("title x\n")},
		{Path: "/vmlinuz", Source: bigPath},
		{Path: "/empty", Data: []byte{}},
		{Path: "/a-rather-long-file-name.with.dots", Data: []byte("long")},
	}
	img := filepath.Join(dir, "esp.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFAT(f, files, testTime); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("fsck.fat", "-n", "-v", img).CombinedOutput(); err != nil {
		t.Fatalf("fsck.fat: %v\n%s", err, out)
	}
	for _, file := range files {
		out, err := exec.Command("mcopy", "-n", "-i", img, "::"+file.Path, "-").Output()
		if err != nil {
			t.Fatalf("mcopy %s: %v", file.Path, err)
		}
		want := file.Data
		if file.Source != "" {
			want = big
		}
		if !bytes.Equal(out, want) {
			t.Errorf("%s: read back %d bytes, want %d", file.Path, len(out), len(want))
		}
	}
	out, err := exec.Command("mdir", "-i", img, "::/loader").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "loader.conf") || !strings.Contains(string(out), "2024-05-06") {
		t.Errorf("mdir ::/loader: %v\n%s", err, out)
	}
	// determinism
	f2, _ := os.Create(filepath.Join(dir, "esp2.img"))
	if _, err := WriteFAT(f2, files, testTime); err != nil {
		t.Fatal(err)
	}
	f2.Close()
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(filepath.Join(dir, "esp2.img"))
	if !bytes.Equal(a, b) {
		t.Error("same files gave different FAT images")
	}
}

func TestFATRefusesDuplicates(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = WriteFAT(f, []*File{{Path: "/A", Data: []byte("1")}, {Path: "/a", Data: []byte("2")}}, testTime)
	if err == nil {
		t.Error("two files differing only in case accepted")
	}
}

// TestFATGeometry: cluster size grows with the content so FAT16's cluster
// count limits hold (sparse files: nothing is written).
func TestFATGeometry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		size    int64
		wantSPC uint32
	}{{1 << 20, 4}, {100 << 20, 4}, {200 << 20, 8}, {300 << 20, 16}, {1500 << 20, 64}} {
		p := filepath.Join(dir, "f")
		if err := os.Truncate(p, 0); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		f, _ := os.Create(p)
		f.Truncate(c.size)
		f.Close()
		l, err := planFAT([]*File{{Path: "/initrd.img", Source: p}})
		if err != nil {
			t.Fatal(err)
		}
		if l.spc != c.wantSPC || l.clusters < fatMinCluster || l.clusters > fatMaxCluster {
			t.Errorf("%d bytes: %d sectors/cluster, %d clusters", c.size, l.spc, l.clusters)
		}
		if int64(l.clusters)*l.clusterBytes() < c.size {
			t.Errorf("%d bytes do not fit %d clusters of %d", c.size, l.clusters, l.clusterBytes())
		}
	}
	f, _ := os.Create(filepath.Join(dir, "huge"))
	f.Truncate(3 << 30)
	f.Close()
	if _, err := planFAT([]*File{{Path: "/x", Source: filepath.Join(dir, "huge")}}); err == nil {
		t.Error("3 GiB accepted on FAT16")
	}
}

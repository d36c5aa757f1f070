package iso

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBoot writes a small kernel and initrd stand-in for structure tests.
func fakeBoot(t *testing.T, dir string) (kernel, initrd string) {
	t.Helper()
	kernel, initrd = filepath.Join(dir, "k"), filepath.Join(dir, "i")
	k := make([]byte, 1<<20+3)
	rand.Read(k)
	if err := os.WriteFile(kernel, k, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(initrd, bytes.Repeat([]byte("initrd"), 500000), 0o644); err != nil {
		t.Fatal(err)
	}
	return kernel, initrd
}

func needAssets(t *testing.T) {
	t.Helper()
	if err := (Options{}).CheckAssets(); err != nil {
		t.Skip(err)
	}
}

// TestXorrisoReadBack checks the ISO with xorriso: El Torito entries, the
// file tree, the contents of kernel, initrd and isolinux.cfg, the MBR; and
// that a second build is byte-identical.
func TestXorrisoReadBack(t *testing.T) {
	t.Parallel()
	needAssets(t)
	need(t, "xorriso", "osirrox", "mcopy")
	dir := t.TempDir()
	kernel, initrd := fakeBoot(t, dir)
	out := filepath.Join(dir, "a.iso")
	opt := Options{Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 quiet x=1", ModTime: testTime}
	if err := Write(context.Background(), out, opt); err != nil {
		t.Fatal(err)
	}
	rep, err := exec.Command("xorriso", "-indev", out, "-report_el_torito", "plain", "-report_system_area", "plain",
		"-find", "/", "-exec", "lsdl", "--").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, rep)
	}
	for _, want := range []string{
		"El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4",
		"El Torito boot img :   2  UEFI  y   none  0x0000  0x00",
		"/isolinux/isolinux.bin", "/isolinux/ldlinux.c32", "/boot/efiboot.img", "/boot/vmlinuz", "/boot/initrd.img",
		"MBR partition      :   1   0x80  0x17", "MBR partition      :   2   0x00  0xef", "isohybrid-suitable",
		"2024",
	} {
		if !strings.Contains(strings.ToLower(string(rep)), strings.ToLower(want)) {
			t.Errorf("xorriso report lacks %q:\n%s", want, rep)
		}
	}
	x := filepath.Join(dir, "x")
	if out, err := exec.Command("osirrox", "-indev", out, "-extract", "/", x).CombinedOutput(); err != nil {
		t.Fatalf("osirrox: %v\n%s", err, out)
	}
	for src, name := range map[string]string{kernel: "boot/vmlinuz", initrd: "boot/initrd.img"} {
		a, _ := os.ReadFile(src)
		b, err := os.ReadFile(findCI(t, x, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from its source (%v)", name, err)
		}
	}
	cfg, _ := os.ReadFile(findCI(t, x, "isolinux/isolinux.cfg"))
	if !strings.Contains(string(cfg), "APPEND console=ttyS0 quiet x=1\n") {
		t.Errorf("isolinux.cfg:\n%s", cfg)
	}
	esp := findCI(t, x, "boot/efiboot.img")
	entry, err := exec.Command("mcopy", "-n", "-i", esp, "::/loader/entries/swarmboot.conf", "-").Output()
	if err != nil || !strings.Contains(string(entry), "options console=ttyS0 quiet x=1\n") {
		t.Errorf("ESP loader entry: %v\n%s", err, entry)
	}
	again := filepath.Join(dir, "b.iso")
	if err := Write(context.Background(), again, opt); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same inputs differ")
	}
	if len(a)%(1<<20) != 0 {
		t.Errorf("ISO size %d not padded to 1 MiB", len(a))
	}
}

// findCI finds rel under dir ignoring case (plain ISO 9660 names are upper case).
func findCI(t *testing.T, dir, rel string) string {
	t.Helper()
	cur := dir
	for _, part := range strings.Split(rel, "/") {
		ents, err := os.ReadDir(cur)
		if err != nil {
			t.Fatal(err)
		}
		found := ""
		for _, e := range ents {
			n := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ";1"), ".")
			if strings.EqualFold(n, part) {
				found = e.Name()
			}
		}
		if found == "" {
			t.Fatalf("%s not found in %s", part, cur)
		}
		cur = filepath.Join(cur, found)
	}
	return cur
}

func TestRefusesMultilineCmdline(t *testing.T) {
	t.Parallel()
	err := Write(context.Background(), filepath.Join(t.TempDir(), "x.iso"), Options{Cmdline: "a\nb"})
	if err == nil {
		t.Error("a command line with a newline was accepted")
	}
}

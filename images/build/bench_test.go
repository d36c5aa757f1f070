package build

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/images/initrd"
	"github.com/swarmboot/swarmboot/images/iso"
	"github.com/swarmboot/swarmboot/images/rootfs"
)

// benchTree synthesizes ~150 MB of image content: many small and medium
// files, a few large ones; about 40% random (incompressible) bytes and
// 60% text-like (compressible) data, like binaries plus configs and docs.
func benchTree(b *testing.B) (dir string, total int64) {
	b.Helper()
	dir = filepath.Join(b.TempDir(), "tree")
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the quick brown fox jumps over lazy dog docker swarm kernel initrd module firmware " +
		"config service container runtime mount overlay network bridge address route table")
	text := func(n int) []byte {
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		return []byte(sb.String()[:n])
	}
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				p[i+j] = byte(v >> (8 * j))
			}
		}
		return p
	}
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	for i := 0; total < 150<<20; i++ {
		var size int
		switch {
		case i%200 == 0:
			size = 4<<20 + rng.IntN(6<<20)
		case i%10 == 0:
			size = 128<<10 + rng.IntN(512<<10)
		default:
			size = 1<<10 + rng.IntN(48<<10)
		}
		name := fmt.Sprintf("usr/lib/d%02d/s%d/f%05d", i%37, i%5, i)
		if rng.IntN(10) < 4 {
			write(name+".so", random(size))
		} else {
			write(name+".txt", text(size))
		}
	}
	return dir, total
}

func timeCmd(b *testing.B, dir, script string) time.Duration {
	b.Helper()
	start := time.Now()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", script, err, out)
	}
	return time.Since(start)
}

func fileSize(b *testing.B, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

func writeInitrd(b *testing.B, tree, out string) time.Duration {
	b.Helper()
	start := time.Now()
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	w, err := initrd.NewWriter(f, initrd.Options{})
	if err != nil {
		b.Fatal(err)
	}
	kernel := filepath.Join(filepath.Dir(tree), "kernel")
	if err := os.WriteFile(kernel, []byte("k"), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := (DirSource{Dir: tree, Kernel: kernel}).Assemble(context.Background(), w); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkInitrd: our initrd writer against `cpio -o -H newc | gzip` and
// `| pigz` on the same ~150 MB tree. Goal: ≤ 0.5× the gzip pipeline.
func BenchmarkInitrd(b *testing.B) {
	for _, tool := range []string{"cpio", "gzip", "pigz"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed (apt-get install cpio gzip pigz)", tool)
		}
	}
	tree, total := benchTree(b)
	out := filepath.Dir(tree)
	writeInitrd(b, tree, filepath.Join(out, "warm.img")) // page cache warm for everyone
	b.ResetTimer()
	for range b.N {
		ours := writeInitrd(b, tree, filepath.Join(out, "ours.img"))
		ref := timeCmd(b, tree, "find . -mindepth 1 | cpio -o -H newc --quiet | gzip > ../ref.gz")
		pigz := timeCmd(b, tree, "find . -mindepth 1 | cpio -o -H newc --quiet | pigz > ../ref.pigz")
		b.ReportMetric(ours.Seconds()/ref.Seconds(), "x-vs-cpio|gzip")
		b.ReportMetric(ours.Seconds()/pigz.Seconds(), "x-vs-cpio|pigz")
		b.ReportMetric(float64(fileSize(b, filepath.Join(out, "ours.img")))/float64(fileSize(b, filepath.Join(out, "ref.gz"))), "size-vs-gzip")
		b.Logf("initrd of %s: ours %v (%s), cpio|gzip %v (%s) → %.2fx, cpio|pigz %v → %.2fx",
			human(total), ours.Round(time.Millisecond), human(fileSize(b, filepath.Join(out, "ours.img"))),
			ref.Round(time.Millisecond), human(fileSize(b, filepath.Join(out, "ref.gz"))), ours.Seconds()/ref.Seconds(),
			pigz.Round(time.Millisecond), ours.Seconds()/pigz.Seconds())
	}
}

// BenchmarkISO: our hybrid ISO (FAT ESP + ISO 9660 + isohybrid) against
// mkfs.fat + mtools for the same ESP and `xorriso -as mkisofs` with the
// same El Torito entries and isohybrid MBR. Goal: ≤ 1.0×.
func BenchmarkISO(b *testing.B) {
	for _, tool := range []string{"xorriso", "mkfs.fat", "mcopy", "mmd"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed (apt-get install xorriso dosfstools mtools)", tool)
		}
	}
	if err := (iso.Options{}).CheckAssets(); err != nil {
		b.Skip(err)
	}
	tree, _ := benchTree(b)
	dir := filepath.Dir(tree)
	rd := filepath.Join(dir, "initrd.img")
	writeInitrd(b, tree, rd)
	kernel := filepath.Join(dir, "vmlinuz")
	rng := rand.New(rand.NewPCG(3, 4))
	k := make([]byte, 8<<20)
	for i := range k {
		k[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(kernel, k, 0o644); err != nil {
		b.Fatal(err)
	}
	content := fileSize(b, rd) + int64(len(k))
	cmdline := "console=ttyS0 quiet"
	// reference staging: hard links and the loader files (not timed)
	stage := filepath.Join(dir, "stage")
	for _, d := range []string{"isolinux", "boot", "loader/entries"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for src, dst := range map[string]string{iso.DefaultIsolinux: "isolinux/isolinux.bin", iso.DefaultLdlinux: "isolinux/ldlinux.c32",
		kernel: "boot/vmlinuz", rd: "boot/initrd.img"} {
		if err := linkFile(src, filepath.Join(stage, dst)); err != nil {
			b.Fatal(err)
		}
	}
	files := map[string]string{"isolinux/isolinux.cfg": "DEFAULT l\nLABEL l\n KERNEL /boot/vmlinuz\n INITRD /boot/initrd.img\n APPEND " + cmdline + "\n",
		"loader/loader.conf": "default swarmboot.conf\n", "loader/entries/swarmboot.conf": "linux /vmlinuz\ninitrd /initrd.img\noptions " + cmdline + "\n"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(stage, name), []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	espKiB := (content*105/100 + 4<<20) >> 10
	refScript := fmt.Sprintf(`set -e
rm -f boot/efiboot.img ../ref.iso
mkfs.fat -C boot/efiboot.img %d >/dev/null
mmd -i boot/efiboot.img ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i boot/efiboot.img %s ::/EFI/BOOT/BOOTX64.EFI
mcopy -i boot/efiboot.img loader/loader.conf ::/loader/
mcopy -i boot/efiboot.img loader/entries/swarmboot.conf ::/loader/entries/
mcopy -i boot/efiboot.img boot/vmlinuz ::/vmlinuz
mcopy -i boot/efiboot.img boot/initrd.img ::/initrd.img
xorriso -as mkisofs -quiet -o ../ref.iso -V SWARMBOOT -isohybrid-mbr %s -c isolinux/boot.cat \
  -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 -boot-info-table \
  -eltorito-alt-boot -e boot/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
  -m loader .
`, espKiB, iso.DefaultSystemdBoot, iso.DefaultIsohdpfx)
	ours := func() time.Duration {
		start := time.Now()
		if err := iso.Write(context.Background(), filepath.Join(dir, "ours.iso"),
			iso.Options{Kernel: kernel, Initrd: rd, Cmdline: cmdline}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	ours() // warm
	b.ResetTimer()
	for range b.N {
		o := ours()
		ref := timeCmd(b, stage, refScript)
		b.ReportMetric(o.Seconds()/ref.Seconds(), "x-vs-xorriso")
		b.ReportMetric(float64(fileSize(b, filepath.Join(dir, "ours.iso")))/float64(fileSize(b, filepath.Join(dir, "ref.iso"))), "size-vs-xorriso")
		b.Logf("ISO with %s of kernel+initrd: ours %v (%s), mkfs.fat+mtools+xorriso %v (%s) → %.2fx",
			human(content), o.Round(time.Millisecond), human(fileSize(b, filepath.Join(dir, "ours.iso"))),
			ref.Round(time.Millisecond), human(fileSize(b, filepath.Join(dir, "ref.iso"))), o.Seconds()/ref.Seconds())
	}
}

func linkFile(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Close()
}

var _ rootfs.Writer = (*initrd.Writer)(nil)

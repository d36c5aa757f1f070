package imagetest

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/swarmboot/swarmboot/pkg/debfix"
)

// Modules are the kernel modules the fixture kernel image ships in
// kernel.tar (with their dependencies): what a swarm worker needs under
// QEMU and vSphere (virtio, e1000, vmxnet3, pvscsi), disks and ISOs, and
// Docker's networking (bridge, veth, vxlan, overlay, netfilter, IPVS). The
// rest of Debian's 390 MB module tree is left out to keep images small.
var Modules = []string{
	"virtio_net", "virtio_blk", "virtio_scsi", "virtio_console", "virtio_rng",
	"e1000", "e1000e", "vmxnet3", "vmw_pvscsi", "vmw_balloon", "vmw_vmci", "vmw_vsock_vmci_transport",
	"ata_piix", "ahci", "sd_mod", "sr_mod", "isofs", "ext4", "overlay", "squashfs",
	"bridge", "br_netfilter", "veth", "vxlan", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh",
	"nf_tables", "nft_compat", "nft_chain_nat", "nf_nat", "nf_conntrack", "nf_conntrack_netlink",
	"xt_conntrack", "xt_MASQUERADE", "xt_addrtype", "xt_nat", "xt_mark", "xt_ipvs",
	"iptable_nat", "iptable_filter", "iptable_mangle", "ip_tables", "x_tables", "ip6_tables",
	"crc32c_generic", "crc32c_intel", "af_packet",
}

// kernelImage builds the LinuxKit-style kernel image: /kernel (Debian's
// vmlinuz) and /kernel.tar (lib/modules/<version>/ with Modules, their
// dependencies and depmod's index when depmod is installed).
func kernelImage(ctx context.Context, k *debfix.Kernel) (v1.Image, error) {
	tmp, err := os.MkdirTemp("", "imagetest-modules-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	modRoot := filepath.Join(tmp, "lib", "modules", k.Version)
	if err := copyModules(k.Modules, modRoot, Modules); err != nil {
		return nil, fmt.Errorf("kernel %s modules: %w", k.Version, err)
	}
	if depmod, err := lookDepmod(); err == nil {
		if out, err := exec.CommandContext(ctx, depmod, "-b", tmp, k.Version).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("depmod -b %s %s: %w: %s", tmp, k.Version, err, bytes.TrimSpace(out))
		}
	}
	mods := newTar()
	if err := mods.tree("lib/modules/"+k.Version, modRoot); err != nil {
		return nil, err
	}
	modTar, err := mods.bytes()
	if err != nil {
		return nil, err
	}
	top := newTar()
	if err := top.diskFile("kernel", 0o644, k.Vmlinuz); err != nil {
		return nil, err
	}
	top.file("kernel.tar", 0o644, modTar)
	l, err := top.layer()
	if err != nil {
		return nil, err
	}
	return image(imageConfig{Labels: map[string]string{"org.swarmboot.fixture.kernel-version": k.Version}}, l)
}

func lookDepmod() (string, error) {
	if p, err := exec.LookPath("depmod"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/depmod", "/sbin/depmod"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// modName is the module name of a module file (dashes are underscores).
func modName(path string) string {
	b := filepath.Base(path)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// copyModules copies the wanted modules and their dependency closure from
// src (lib/modules/<version>) to dst, with the modules.builtin* and
// modules.order files depmod needs. Wanted modules the kernel has built in
// or lacks are skipped.
func copyModules(src, dst string, wanted []string) error {
	files := map[string]string{} // name → path relative to src
	err := filepath.WalkDir(filepath.Join(src, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			rel, _ := filepath.Rel(src, p)
			files[modName(p)] = rel
		}
		return nil
	})
	if err != nil {
		return err
	}
	need := map[string]bool{}
	var visit func(string) error
	visit = func(n string) error {
		n = strings.ReplaceAll(n, "-", "_")
		rel, ok := files[n]
		if !ok || need[n] {
			return nil
		}
		need[n] = true
		deps, err := moduleDepends(filepath.Join(src, rel))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		return nil
	}
	for _, w := range wanted {
		if err := visit(w); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(need))
	for n := range need {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := copyFile(filepath.Join(src, files[n]), filepath.Join(dst, files[n])); err != nil {
			return err
		}
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		if err := copyFile(filepath.Join(src, f), filepath.Join(dst, f)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

// moduleDepends reads "depends=" (and "softdep=pre:") from a module's
// .modinfo section; compressed modules are asked of modinfo(8).
func moduleDepends(path string) ([]string, error) {
	if !strings.HasSuffix(path, ".ko") {
		out, err := exec.Command("modinfo", "-F", "depends", path).Output()
		if err != nil {
			return nil, fmt.Errorf("modinfo: %w", err)
		}
		return splitList(strings.TrimSpace(string(out))), nil
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "depends":
			deps = append(deps, splitList(v)...)
		case "softdep":
			// "pre: crc32c post: foo": only pre-dependencies matter here.
			fields := strings.Fields(v)
			pre := false
			for _, f := range fields {
				switch {
				case f == "pre:":
					pre = true
				case strings.HasSuffix(f, ":"):
					pre = false
				case pre:
					deps = append(deps, f)
				}
			}
		}
	}
	return deps, nil
}

func splitList(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

package lab

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// EngineModules are the kernel modules the lab's Docker engine and disk
// need that Debian's kernel builds as modules: virtio disk and NIC, ext4,
// overlay, bridge and veth networking, VXLAN for swarm overlay networks,
// IPVS for service VIPs, and legacy iptables with the matches dockerd uses.
var EngineModules = []string{
	"virtio_pci", "virtio_blk", "virtio_net", "af_packet",
	"ext4", "overlay",
	"bridge", "br_netfilter", "veth", "vxlan",
	"ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle",
	"ip6_tables", "ip6table_filter", "ip6table_nat",
	"xt_addrtype", "xt_conntrack", "xt_MASQUERADE", "xt_nat", "xt_mark",
	"xt_comment", "xt_tcpudp", "xt_multiport", "xt_ipvs",
	"ip_vs", "ip_vs_rr", "nf_conntrack_netlink",
}

// Modules indexes a kernel's modules directory (lib/modules/<version>).
type Modules struct {
	dir     string
	paths   map[string]string // name (underscores) → path relative to dir
	builtin map[string]bool
}

func modName(file string) string {
	return strings.ReplaceAll(strings.TrimSuffix(path.Base(file), ".ko"), "-", "_")
}

// OpenModules indexes every .ko under dir.
func OpenModules(dir string) (*Modules, error) {
	m := &Modules{dir: dir, paths: map[string]string{}, builtin: map[string]bool{}}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			m.builtin[modName(l)] = true
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(dir, p)
			m.paths[modName(p)] = filepath.ToSlash(rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: index modules: %w", err)
	}
	if len(m.paths) == 0 {
		return nil, fmt.Errorf("lab: no kernel modules (.ko) under %s", dir)
	}
	return m, nil
}

// modinfo reads the key=value pairs of a module's .modinfo section.
func (m *Modules) modinfo(rel string) (map[string][]string, error) {
	f, err := elf.Open(filepath.Join(m.dir, rel))
	if err != nil {
		return nil, fmt.Errorf("lab: module %s: %w", rel, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("lab: module %s has no .modinfo", rel)
	}
	b, err := s.Data()
	if err != nil {
		return nil, err
	}
	info := map[string][]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			info[k] = append(info[k], v)
		}
	}
	return info, nil
}

// Resolve returns the modules names need, dependencies first (the order to
// insmod them in), as paths relative to the modules directory. A soft
// "pre:" dependency counts as a dependency: libcrc32c's "pre: crc32c"
// brings crc32c_generic, without which nf_tables, nf_nat and ip_vs fail to
// load from an initramfs. Names built into the kernel are skipped.
func (m *Modules) Resolve(names ...string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string) error
	visit = func(name, from string) error {
		name = strings.ReplaceAll(name, "-", "_")
		rel, ok := m.paths[name]
		if !ok {
			// softdep names may be aliases ("crc32c" → crc32c_generic).
			if rel, ok = m.paths[name+"_generic"]; !ok {
				if from != "" || m.builtin[name] {
					return nil // built in
				}
				return fmt.Errorf("lab: kernel module %q not found in %s (built in, or misspelt?)", name, m.dir)
			}
			name += "_generic"
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("lab: module dependency cycle at %s", name)
		case 2:
			return nil
		}
		state[name] = 1
		info, err := m.modinfo(rel)
		if err != nil {
			return err
		}
		var deps []string
		for _, sd := range info["softdep"] {
			if f := strings.Fields(sd); len(f) > 1 && f[0] == "pre:" {
				for _, d := range f[1:] {
					if d == "post:" {
						break
					}
					deps = append(deps, d)
				}
			}
		}
		for _, d := range info["depends"] {
			for _, x := range strings.Split(d, ",") {
				if x != "" {
					deps = append(deps, x)
				}
			}
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, rel)
		return nil
	}
	for _, n := range names {
		if err := visit(n, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Tree returns a tree with the resolved modules under
// lib/modules/<version>/, a modules.dep for modprobe, and modules.load:
// the load order, one path a line, which the lab init insmods.
func (m *Modules) Tree(version string, names ...string) (*Tree, error) {
	order, err := m.Resolve(names...)
	if err != nil {
		return nil, err
	}
	t := NewTree()
	base := "lib/modules/" + version + "/"
	var dep strings.Builder
	for _, rel := range order {
		t.Add(Entry{Name: base + rel, Mode: 0o644, Src: filepath.Join(m.dir, rel)})
		deps, _ := m.Resolve(modName(rel))
		// modules.dep lists dependencies nearest first; modprobe loads
		// them from the end.
		var ds []string
		for i := len(deps) - 2; i >= 0; i-- {
			ds = append(ds, deps[i])
		}
		fmt.Fprintf(&dep, "%s:", rel)
		for _, d := range ds {
			fmt.Fprintf(&dep, " %s", d)
		}
		dep.WriteString("\n")
	}
	t.File(base+"modules.dep", 0o644, []byte(dep.String()))
	t.File(base+"modules.load", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		t.Add(Entry{Name: base + f, Mode: 0o644, Src: filepath.Join(m.dir, f)})
	}
	return t, nil
}

// sortedNames is for tests and messages.
func (m *Modules) sortedNames() []string {
	var n []string
	for k := range m.paths {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

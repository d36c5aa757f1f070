package lab

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/swarmboot/swarmboot/pkg/debfix"
)

//go:embed init.sh
var initScript []byte

//go:embed udhcpc.script
var udhcpcScript []byte

//go:embed format.sh
var formatScript []byte

// Packages are the Debian packages the lab image content is made from
// (their library dependencies come along; see Stage).
var Packages = []string{"docker.io", "containerd", "runc", "tini", "iptables", "e2fsprogs", "util-linux"}

// Staged is a directory of extracted Debian packages.
type Staged struct {
	Dir     string
	Busybox string // static busybox binary
}

// StageAll extracts Packages and their libraries into dir.
func StageAll(ctx context.Context, dir string) (*Staged, error) {
	if _, err := Stage(ctx, dir, Packages...); err != nil {
		return nil, err
	}
	bb, err := debfix.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	return &Staged{Dir: dir, Busybox: bb}, nil
}

// addBusybox installs busybox at bin/busybox with a symlink per applet
// (except where the tree already has a real program).
func (s *Staged) addBusybox(t *Tree) error {
	t.Add(Entry{Name: "bin/busybox", Mode: 0o755, Src: s.Busybox})
	out, err := exec.Command(s.Busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("lab: %s --list-full: %w", s.Busybox, err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "bin/busybox" || t.Has(a) || strings.HasPrefix(a, "linuxrc") {
			continue
		}
		rel, _ := relTo(path.Dir(a), "bin/busybox")
		t.Symlink(a, rel)
	}
	return nil
}

// relTo returns the relative path from directory dir to target.
func relTo(dir, target string) (string, error) {
	up := strings.Repeat("../", strings.Count(dir, "/")+1)
	return up + target, nil
}

func baseFiles(t *Tree) {
	t.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	t.File("etc/group", 0o644, []byte("root:x:0:\ndocker:x:999:\nnogroup:x:65534:\n"))
	t.File("etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost\n"))
	t.File("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n"))
	t.Symlink("var/run", "../run")
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "root", "var/log", "var/lib", "etc/ssl"} {
		t.Dir(d, 0o755)
	}
	t.Dir("tmp", 0o1777)
}

// InitTree is the lab's init image content: busybox as the userland, the
// /init script, runc with its libraries (to run the containers/ bundles)
// and the udhcpc hook.
func (s *Staged) InitTree() (*Tree, error) {
	t := NewTree()
	baseFiles(t)
	if err := t.AddFromRoot(s.Dir, "usr/sbin/runc"); err != nil {
		return nil, err
	}
	if err := s.addBusybox(t); err != nil {
		return nil, err
	}
	t.File("init", 0o755, initScript)
	t.File("etc/udhcpc.script", 0o755, udhcpcScript)
	t.File("etc/resolv.conf", 0o644, nil)
	t.Dir("containers/onboot", 0o755)
	t.Dir("containers/services", 0o755)
	return t, nil
}

// EngineTree is the Docker engine image content: dockerd, the docker CLI,
// containerd and its runc shim, runc, docker-init (tini) and legacy
// iptables, with their libraries and iptables' extensions.
func (s *Staged) EngineTree() (*Tree, error) {
	t := NewTree()
	baseFiles(t)
	bins := []string{
		"usr/sbin/dockerd", "usr/bin/docker", "usr/sbin/docker-proxy", "usr/bin/docker-init",
		"usr/bin/containerd", "usr/bin/containerd-shim-runc-v2", "usr/bin/ctr", "usr/sbin/runc",
		"usr/sbin/xtables-legacy-multi", "usr/lib/x86_64-linux-gnu/xtables",
	}
	if err := t.AddFromRoot(s.Dir, bins...); err != nil {
		return nil, err
	}
	for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		t.Symlink("usr/sbin/"+n, "xtables-legacy-multi")
	}
	// dockerd and its helpers call a few shell tools; busybox has them.
	if err := s.addBusybox(t); err != nil {
		return nil, err
	}
	t.File("etc/docker/daemon.json", 0o644, []byte("{}\n"))
	t.Dir("var/lib/docker", 0o711)
	return t, nil
}

// FormatTree is the onboot "format" image content: busybox (mount), blkid
// (Debian's busybox has none) and mke2fs with their libraries, and the
// format script at /format.sh.
func (s *Staged) FormatTree() (*Tree, error) {
	t := NewTree()
	baseFiles(t)
	if err := t.AddFromRoot(s.Dir, "sbin/mke2fs", "sbin/blkid"); err != nil {
		return nil, err
	}
	for _, n := range []string{"mkfs.ext4", "mke2fs.ext4"} {
		t.Symlink("sbin/"+n, "mke2fs")
	}
	if err := s.addBusybox(t); err != nil {
		return nil, err
	}
	t.File("etc/mke2fs.conf", 0o644, mustRead(s.Dir, "etc/mke2fs.conf"))
	t.File("format.sh", 0o755, formatScript)
	return t, nil
}

func mustRead(dir, name string) []byte {
	b, _ := os.ReadFile(path.Join(dir, name))
	return b
}

// KernelTree is the kernel image content, as LinuxKit kernel images lay it
// out: /kernel and /kernel.tar's content (here as a tree: the modules the
// engine needs, resolved with their dependencies, plus modules.load).
func KernelModules(k *debfix.Kernel, names ...string) (*Tree, error) {
	m, err := OpenModules(k.Modules)
	if err != nil {
		return nil, err
	}
	return m.Tree(k.Version, names...)
}

package lab

import (
	"bytes"
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/pkg/debfix"
)

// References of the lab images, as linuxkit/lab.yml names them.
const (
	KernelRef = "swarmboot/lab-kernel:v1"
	InitRef   = "swarmboot/lab-init:v1"
	FormatRef = "swarmboot/lab-format:v1"
	DockerRef = "swarmboot/lab-docker:v1"
)

// Labels (org.mobyproject.config) of the lab's system containers: what
// LinuxKit's format/mount and docker images need, in LinuxKit's terms.
const (
	// The format step needs the block devices, and its mount of
	// /var/lib/docker must propagate to the host (rshared /var, shared
	// rootfs propagation), as linuxkit/mount does.
	FormatLabel = `{"capabilities":["all"],"net":"host","pid":"host",` +
		`"binds":["/dev:/dev","/var:/var:rshared,rbind","/run:/run:rshared,rbind"],` +
		`"devices":[{"path":"all","type":"b"},{"path":"all","type":"c"}],` +
		`"rootfsPropagation":"shared","command":["/format.sh"]}`
	// dockerd: all capabilities and devices, the host network, a writable
	// cgroup2 mount and a cgroup of its own outside /docker (cgroup v2 has
	// no processes in inner nodes, and dockerd puts containers under
	// /docker), the socket in the host's /run, DOCKER_RAMDISK because the
	// root is an initramfs (no pivot_root).
	DockerLabel = `{"capabilities":["all"],"net":"host","pid":"host","ipc":"host","uts":"host",` +
		`"cgroupsPath":"/lab/docker",` +
		`"mounts":[{"type":"cgroup","options":["rw","nosuid","noexec","nodev","relatime"]}],` +
		`"binds":["/dev:/dev","/etc/resolv.conf:/etc/resolv.conf","/var/lib/docker:/var/lib/docker:rshared,rbind",` +
		`"/lib/modules:/lib/modules","/run:/run:rshared,rbind","/etc/docker/daemon.json:/etc/docker/daemon.json"],` +
		`"devices":[{"path":"all","type":"b"},{"path":"all","type":"c"}],` +
		`"runtime":{"mkdir":["/var/lib/docker","/etc/docker"]},` +
		`"env":["DOCKER_RAMDISK=true","PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],` +
		`"command":["/usr/bin/docker-init","--","/usr/sbin/dockerd"]}`
)

// Refs are the references Images stored.
type Refs struct {
	Kernel, Init, Format, Docker string
	KernelVersion                string
}

var created = time.Unix(0, 0).UTC()

// image makes a linux/amd64 OCI image of one layer (the tree).
func image(t *Tree, label string, cmd []string) (v1.Image, error) {
	layer, err := t.Layer()
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", v1.Time{Time: created}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = cmd
	if label != "" {
		cf.Config.Labels = map[string]string{"org.mobyproject.config": label}
	}
	return mutate.ConfigFile(img, cf)
}

// kernelImage is a LinuxKit kernel image: /kernel and /kernel.tar (the
// modules tree).
func kernelImage(k *debfix.Kernel, mods *Tree) (v1.Image, error) {
	var tarball bytes.Buffer
	if err := mods.WriteTar(&tarball, ""); err != nil {
		return nil, err
	}
	t := NewTree()
	t.Add(Entry{Name: "kernel", Mode: 0o644, Src: k.Vmlinuz})
	t.File("kernel.tar", 0o644, tarball.Bytes())
	return image(t, "", nil)
}

// Images synthesizes the lab images from Debian packages (the kernel,
// busybox, docker.io, containerd, runc, tini, iptables, e2fsprogs,
// util-linux and their libraries) and writes them into s. stageDir is a
// scratch directory for the extracted packages (removed by the caller).
func Images(ctx context.Context, s *store.Store, stageDir string) (*Refs, error) {
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		return nil, err
	}
	st, err := StageAll(ctx, stageDir)
	if err != nil {
		return nil, err
	}
	mods, err := KernelModules(k, EngineModules...)
	if err != nil {
		return nil, err
	}
	initT, err := st.InitTree()
	if err != nil {
		return nil, err
	}
	formatT, err := st.FormatTree()
	if err != nil {
		return nil, err
	}
	engineT, err := st.EngineTree()
	if err != nil {
		return nil, err
	}
	kimg, err := kernelImage(k, mods)
	if err != nil {
		return nil, err
	}
	build := []struct {
		ref string
		img func() (v1.Image, error)
	}{
		{KernelRef, func() (v1.Image, error) { return kimg, nil }},
		{InitRef, func() (v1.Image, error) { return image(initT, "", nil) }},
		{FormatRef, func() (v1.Image, error) { return image(formatT, FormatLabel, []string{"/format.sh"}) }},
		{DockerRef, func() (v1.Image, error) { return image(engineT, DockerLabel, []string{"/usr/sbin/dockerd"}) }},
	}
	for _, b := range build {
		img, err := b.img()
		if err != nil {
			return nil, fmt.Errorf("lab: image %s: %w", b.ref, err)
		}
		if err := s.Write(b.ref, img); err != nil {
			return nil, fmt.Errorf("lab: store %s: %w", b.ref, err)
		}
	}
	return &Refs{Kernel: KernelRef, Init: InitRef, Format: FormatRef, Docker: DockerRef, KernelVersion: k.Version}, nil
}

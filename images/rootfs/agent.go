package rootfs

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/swarmboot/swarmboot/images/yml"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// AgentName is the service name of the baked-in swarmboot agent.
const AgentName = "swarmboot-agent"

// AgentBinaryRef is the reference a packed agent binary gets (Agent.Binary).
const AgentBinaryRef = "swarmboot/agent:baked"

// AgentPath is where a packed agent binary lives in its container.
const AgentPath = "/usr/bin/swarmboot-agent"

// Agent bakes the swarmboot agent into the image as the service
// "swarmboot-agent" (see AgentService). It is not added when the yml says
//
//	x-swarmboot:
//	  agent: false
//
// A service of that name declared by the yml keeps its settings (binds,
// command, ...) but runs the agent given here.
type Agent struct {
	// Image is the agent image's reference in the store; or
	Image string
	// Binary is the path of a static swarmboot-agent binary, packed as
	// /usr/bin/swarmboot-agent into a one-layer image (AgentBinaryRef).
	Binary string
	// Files are appended to the yml's files: the site's public trust
	// material (appliance URL, CA certificate). Never secrets.
	Files []yml.File
}

// TrustBind shows the agent the host's /etc/swarmboot (api.TrustDir),
// read-only: appliance.json and ca.pem baked in by the builder (Agent.Files)
// or laid over the initramfs by the appliance, and an optional token file.
const TrustBind = api.TrustDir + ":" + api.TrustDir + ":ro"

// AgentService is the services entry of the agent: the Docker socket and
// data, the onboot logs (format/mount results), the trust material,
// devices, host network.
func AgentService(ref string) *yml.Image {
	binds := []string{
		"/var/run:/var/run",
		"/var/lib/docker:/var/lib/docker",
		"/run/log/onboot:/run/log/onboot:ro",
		TrustBind,
		"/dev:/dev",
	}
	// The agent reads the ext4 superblock of the disk behind
	// /var/lib/docker (formatted this boot or pre-existing), so the device
	// cgroup must let it open block devices.
	devices := []yml.Device{{Path: "all", Type: "b"}}
	return &yml.Image{Name: AgentName, Image: ref, ImageConfig: yml.ImageConfig{BindsAdd: &binds, Net: "host", Devices: &devices}}
}

// TrustFiles turns the site's public trust material (api.TrustFiles:
// appliance.json with the agent API URL, ca.pem) into files entries for
// Agent.Files, mode 0644, in a fixed order.
func TrustFiles(c api.TrustConfig, caPEM []byte) ([]yml.File, error) {
	m, err := api.TrustFiles(c, caPEM)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	files := make([]yml.File, 0, len(names))
	for _, n := range names {
		content := string(m[n])
		files = append(files, yml.File{Path: strings.TrimPrefix(n, "/"), Contents: &content, Mode: "0644"})
	}
	return files, nil
}

// withTrustBind returns s with TrustBind added unless something is already
// mounted at api.TrustDir: a yml's own swarmboot-agent service keeps its
// settings, but the agent cannot work without its trust material.
func withTrustBind(s *yml.Image) *yml.Image {
	for _, list := range []*[]string{s.Binds, s.BindsAdd} {
		if list == nil {
			continue
		}
		for _, b := range *list {
			if parts := strings.Split(b, ":"); len(parts) >= 2 && path.Clean(parts[1]) == api.TrustDir {
				return s
			}
		}
	}
	if s.Mounts != nil {
		for _, m := range *s.Mounts {
			if path.Clean(m.Destination) == api.TrustDir {
				return s
			}
		}
	}
	out := *s
	if s.Binds != nil { // binds replaces the image's binds and ignores binds.add
		b := append(append([]string(nil), *s.Binds...), TrustBind)
		out.Binds = &b
	} else {
		b := append([]string(nil), TrustBind)
		if s.BindsAdd != nil {
			b = append(append([]string(nil), *s.BindsAdd...), TrustBind)
		}
		out.BindsAdd = &b
	}
	return &out
}

// trustDirFile makes sure api.TrustDir exists in the image (a bind's source
// must exist for runc) when no file entry creates it already.
func trustDirFile(files []yml.File) []yml.File {
	dir := strings.TrimPrefix(api.TrustDir, "/")
	for _, f := range files {
		if p := strings.Trim(path.Clean("/"+f.Path), "/"); p == dir || strings.HasPrefix(p, dir+"/") {
			return files
		}
	}
	return append(files, yml.File{Path: dir, Directory: true, Mode: "0755"})
}

// withAgent returns c with the agent service and files added (a copy), and
// the image source that also knows a packed agent binary. A swarmboot-agent
// service the yml declares keeps its settings but runs this build's agent
// image, so agent and appliance versions always match.
func withAgent(c *yml.Config, src ImageSource, ag *Agent) (*yml.Config, ImageSource, error) {
	if ag == nil || (c.Swarmboot != nil && c.Swarmboot.Agent != nil && !*c.Swarmboot.Agent) {
		return c, src, nil
	}
	ref := ag.Image
	if ag.Binary != "" {
		img, err := binaryImage(ag.Binary)
		if err != nil {
			return nil, nil, err
		}
		ref = AgentBinaryRef
		src = overlaySource{ref: ref, img: img, next: src}
	}
	if ref == "" {
		return nil, nil, fmt.Errorf("agent: set Agent.Image or Agent.Binary")
	}
	out := *c
	out.Files = trustDirFile(append(append([]yml.File(nil), c.Files...), ag.Files...))
	out.Services = append([]*yml.Image(nil), c.Services...)
	for i, s := range out.Services {
		if s.Name == AgentName {
			declared := *withTrustBind(s)
			declared.Image = ref
			out.Services[i] = &declared
			return &out, src, nil
		}
	}
	out.Services = append(out.Services, AgentService(ref))
	return &out, src, nil
}

type overlaySource struct {
	ref  string
	img  v1.Image
	next ImageSource
}

func (o overlaySource) Image(ref, platform string) (v1.Image, error) {
	if ref == o.ref {
		return o.img, nil
	}
	return o.next.Image(ref, platform)
}

// binaryImage packs a static binary into a deterministic one-layer image.
func binaryImage(binPath string) (v1.Image, error) {
	bin, err := os.ReadFile(binPath)
	if err != nil {
		return nil, fmt.Errorf("agent binary: %w (build it with make build)", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, d := range []string{"usr/", "usr/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: AgentPath[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin)), ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, fmt.Errorf("agent binary: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("agent binary: %w", err)
	}
	return mutate.Config(img, v1.Config{Entrypoint: []string{AgentPath}, Env: []string{"PATH=/usr/bin:/bin"}})
}

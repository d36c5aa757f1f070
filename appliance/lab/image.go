package lab

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/images/yml"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// GenerationFile is where a lab image of generation 2 or later says which
// one it is. Only that file differs between generations, so a roll onto
// one is what a rebuild with a newer Docker is to a site: another version.
const GenerationFile = "/etc/swarmboot/lab-generation"

// buildImage builds opt.YML as the image name into the lab's artifacts
// directory, with the agent (10 s heartbeat) and the appliance's public
// trust baked in. Generation 1 is the yml as it is; a later one carries
// GenerationFile.
func (l *Lab) buildImage(ctx context.Context, name string, generation int) (*build.Manifest, error) {
	cfg, err := yml.Load(l.opt.YML)
	if err != nil {
		return nil, err
	}
	// A 10 s heartbeat (30 s in production) keeps the manager's pushed
	// node list fresh for the summary and a roll's waits short.
	agentSvc := rootfs.AgentService(rootfs.AgentBinaryRef)
	agentSvc.ImageConfig.Command = &[]string{rootfs.AgentPath, "--heartbeat=10s"}
	cfg.Services = append(cfg.Services, agentSvc)
	if generation > 1 {
		gen := strconv.Itoa(generation) + "\n"
		cfg.Files = append(cfg.Files, yml.File{Path: GenerationFile, Contents: &gen, Mode: "0644"})
	}
	files, err := rootfs.TrustFiles(api.TrustConfig{URL: l.d.APIURL()}, l.d.CAPEM())
	if err != nil {
		return nil, err
	}
	src := build.FromYML(cfg, l.opt.Images, "")
	src.Options.Agent = &rootfs.Agent{Binary: l.opt.Agent, Files: files}
	t0 := time.Now()
	m, err := build.Build(ctx, src, build.Options{Name: name, OutDir: l.art, Formats: []string{build.FormatKernelInitrd}, Log: l.opt.Log})
	if err != nil {
		return nil, fmt.Errorf("lab: build %s from %s: %w", name, l.opt.YML, err)
	}
	var initrd int64
	for _, a := range m.Artifacts {
		if a.Kind == "initrd" {
			initrd = a.Size
		}
	}
	fmt.Fprintf(l.opt.Out, "lab: image %s built in %v: initrd %.1f MiB gzip'd, agent and trust (%s) baked in\n",
		m.Version, time.Since(t0).Round(100*time.Millisecond), float64(initrd)/(1<<20), l.d.APIURL())
	if generation <= 1 {
		l.Initrd, l.Version = initrd, m.Version
	}
	return m, nil
}

package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/enroll"
	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
	"github.com/swarmboot/swarmboot/pkg/api"
)

func newBuildCmd(g *Globals) *cobra.Command {
	var (
		files    []string
		out      string
		formats  []string
		name     string
		pull     bool
		platform string
		agent    string
		trust    trustFlags
	)
	cmd := &cobra.Command{
		Use:   "build -f FILE [-f FILE...] -o DIR",
		Short: "Build kernel + initrd and a hybrid BIOS/UEFI ISO from linuxkit.yml files",
		Long: `build reads one or more LinuxKit yml files (several merge the way LinuxKit
merges them), assembles the root filesystem from the local image store and
writes, in pure Go and without Docker:

  NAME-kernel, NAME-initrd.img, NAME-cmdline   (--format kernel+initrd)
  NAME.iso      hybrid ISO: BIOS (isolinux) and UEFI (systemd-boot), CD or disk
  NAME.manifest.json   image digests, sha256 and size of every artifact
  NAME.version  the image's version, NAME@<12 hex digits>, also printed on
                stdout at the end

The version is a digest of everything that goes into the image (every
file with its bytes and mode, the kernel, the command line, the digests of
the images used; not timestamps): the same inputs give the same version, a
new Docker image or any changed file a new one. It is baked into the image
as /etc/swarmboot/image-version; the agent reports it, and a rotation
waits for a rebooted node to report the new version.

Images must be in the store first (swarmboot image import / pull); every
missing image is listed with the command that adds it. The network is used
only with --pull. The same inputs give byte-identical artifacts; set
SOURCE_DATE_EPOCH to pin the manifest's build time too.

The swarmboot agent runs in every image as the service swarmboot-agent
(--agent bakes in this swarmboot's binary). --appliance-url bakes the site's
public trust material in beside it: /etc/swarmboot/appliance.json (the URL
the agents enroll at) and /etc/swarmboot/ca.pem (the appliance's CA
certificate, read from <data-dir>/ca/ca.pem, or --ca FILE). Nothing secret
goes into an image: files[].source may not read from the data directory.

Examples:
  swarmboot build -f linuxkit/worker.yml -o out/
  swarmboot build -f base.yml -f site.yml -o out/ --name worker --format iso
  swarmboot build -f linuxkit/worker.yml -o out/ --agent bin/swarmboot-agent \
      --appliance-url https://10.0.0.5:8443
  swarmboot build -f linuxkit/worker.yml -o out/ --agent bin/swarmboot-agent \
      --appliance-url https://appliance.example:8443 --ca appliance-ca.pem
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) swarmboot build -f worker.yml -o out/
  version=$(swarmboot build -f linuxkit/worker.yml -o out/)   # worker@3f2a9c1d0b7e`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("build: no yml given: pass -f linuxkit/worker.yml (see swarmboot build --help)")
			}
			if out == "" {
				return fmt.Errorf("build: no output directory: pass -o out/")
			}
			var fs []string
			for _, f := range formats {
				for _, part := range strings.Split(f, ",") {
					if part = strings.TrimSpace(part); part != "" {
						fs = append(fs, part)
					}
				}
			}
			for _, f := range fs {
				if !slices.Contains(build.Formats, f) {
					return fmt.Errorf("build: --format %q: want %s (comma separated)", f, strings.Join(build.Formats, ", "))
				}
			}
			if name == "" {
				name = strings.TrimSuffix(strings.TrimSuffix(filepath.Base(files[0]), ".yml"), ".yaml")
			}
			cfg, err := yml.Load(files...)
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings {
				g.Log.Warn(w)
			}
			s, err := openImageStore(g)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			src := build.FromYML(cfg, s, platform)
			// files[].source must never carry the CA key or tokens into an image.
			src.Options.DenySourceDirs = []string{g.DataDir}
			trustFiles, err := trust.files(g, cfg, name)
			if err != nil {
				return err
			}
			var skip []string
			declared := ""
			for _, svc := range cfg.Services {
				if svc.Name == rootfs.AgentName {
					declared = svc.Image
				}
			}
			switch {
			case agent != "":
				if _, err := os.Stat(agent); err != nil {
					return fmt.Errorf("build: --agent: %w (build it with `make build`: bin/swarmboot-agent)", err)
				}
				src.Options.Agent = &rootfs.Agent{Binary: agent, Files: trustFiles}
				if declared != "" {
					skip = append(skip, declared) // replaced by the baked binary
				}
			case declared != "":
				// The yml's own agent image; it gets the trust bind and files.
				src.Options.Agent = &rootfs.Agent{Image: declared, Files: trustFiles}
			case trustFiles != nil:
				return fmt.Errorf("build: --appliance-url: the yml has no %s service to give the trust material to: pass --agent bin/swarmboot-agent", rootfs.AgentName)
			}
			if err := build.CheckImages(ctx, cfg, s, platform, pull, skip...); err != nil {
				return err
			}
			m, err := build.Build(ctx, src, build.Options{
				Formats: fs, Name: name, OutDir: out, Progress: g.Stderr, Terminal: Terminal(g.Stderr), Log: g.Log,
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, m.Version)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&files, "file", "f", nil, "linuxkit yml file (repeat to merge several)")
	f.StringVarP(&out, "output", "o", "", "output directory")
	f.StringSliceVar(&formats, "format", []string{build.FormatKernelInitrd, build.FormatISO}, "outputs: kernel+initrd, iso (comma separated)")
	f.StringVar(&name, "name", "", "artifact name prefix (default: first yml's base name)")
	f.BoolVar(&pull, "pull", false, "pull images missing from the store from their registry")
	f.StringVar(&platform, "platform", store.DefaultPlatform, "image platform")
	f.StringVar(&agent, "agent", "", "static swarmboot-agent binary to bake in as the swarmboot-agent service")
	f.StringVar(&trust.url, "appliance-url", "", "agent API URL the image's agent enrolls at, e.g. https://10.0.0.5:8443 (bakes /etc/swarmboot/appliance.json and ca.pem)")
	f.StringVar(&trust.serverName, "appliance-name", "", "TLS name the agent verifies on the appliance's certificate (default: the URL's host)")
	f.StringVar(&trust.caFile, "ca", "", "appliance CA certificate (PEM) to bake in (default: <data-dir>/ca/ca.pem)")
	return cmd
}

// trustFlags are the site's public trust material for the agent.
type trustFlags struct{ url, serverName, caFile string }

// files returns the trust files to bake in with the agent, or nil when
// --appliance-url is not given. The CA certificate comes from --ca or from
// the appliance's CA under the data dir; only certificates are accepted.
func (t trustFlags) files(g *Globals, cfg *yml.Config, name string) ([]yml.File, error) {
	if t.url == "" {
		if t.caFile != "" || t.serverName != "" {
			return nil, fmt.Errorf("build: --ca and --appliance-name go with --appliance-url https://HOST:PORT")
		}
		return nil, nil
	}
	if cfg.Swarmboot != nil && cfg.Swarmboot.Agent != nil && !*cfg.Swarmboot.Agent {
		return nil, fmt.Errorf("build: --appliance-url: the yml opts out of the agent (x-swarmboot: agent: false), so nothing would read the trust material; drop one or the other")
	}
	tc := api.TrustConfig{URL: t.url, ServerName: t.serverName, Image: name}
	if err := tc.Validate(); err != nil {
		return nil, fmt.Errorf("build: --appliance-url: %w", err)
	}
	caPath := t.caFile
	if caPath == "" {
		caPath = filepath.Join(enroll.CADir(g.DataDir), ca.CertFile)
	}
	caPEM, err := os.ReadFile(caPath)
	if errors.Is(err, os.ErrNotExist) && t.caFile == "" {
		return nil, fmt.Errorf("build: --appliance-url: no appliance CA at %s: start the appliance once with this data dir (swarmboot --data-dir %s appliance run) to create it, or pass --ca FILE with the appliance's <data-dir>/ca/ca.pem", caPath, g.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("build: --ca: %w", err)
	}
	files, err := rootfs.TrustFiles(tc, caPEM)
	if err != nil {
		return nil, fmt.Errorf("build: %s: %w", caPath, err)
	}
	return files, nil
}

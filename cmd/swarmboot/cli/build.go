package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
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

Images must be in the store first (swarmboot image import / pull); every
missing image is listed with the command that adds it. The network is used
only with --pull. The same inputs give byte-identical artifacts; set
SOURCE_DATE_EPOCH to pin the manifest's build time too.

Examples:
  swarmboot build -f linuxkit/worker.yml -o out/
  swarmboot build -f base.yml -f site.yml -o out/ --name worker --format iso
  swarmboot build -f linuxkit/worker.yml -o out/ --agent bin/swarmboot-agent
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) swarmboot build -f worker.yml -o out/`,
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
			var skip []string
			if agent != "" {
				if _, err := os.Stat(agent); err != nil {
					return fmt.Errorf("build: --agent: %w (build it with `make build`: bin/swarmboot-agent)", err)
				}
				src.Options.Agent = &rootfs.Agent{Binary: agent}
				for _, svc := range cfg.Services {
					if svc.Name == rootfs.AgentName {
						skip = append(skip, svc.Image) // replaced by the baked binary
					}
				}
			}
			if err := build.CheckImages(ctx, cfg, s, platform, pull, skip...); err != nil {
				return err
			}
			_, err = build.Build(ctx, src, build.Options{
				Formats: fs, Name: name, OutDir: out, Progress: g.Stderr, Terminal: Terminal(g.Stderr), Log: g.Log,
			})
			return err
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
	return cmd
}

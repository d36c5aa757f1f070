package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/images/store"
)

// openImageStore opens the image store under the data directory.
func openImageStore(g *Globals) (*store.Store, error) {
	s, err := store.Open(filepath.Join(g.DataDir, "images"))
	if err != nil {
		return nil, err
	}
	s.Log = g.Log
	return s, nil
}

func newImageCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the local OCI image store that builds read from",
		Long: `swarmboot builds read every image a linuxkit.yml names (kernel, init, onboot,
services) from a local OCI image store under <data-dir>/images: an OCI image
layout with the same conventions as LinuxKit's cache (index.json entries named
by org.opencontainers.image.ref.name). Builds never touch the network.

Air-gapped site: on a machine with registry access, save the images the yml
names, carry the files over, and import them:

  # connected machine (Docker, or skopeo, or linuxkit cache export)
  docker pull linuxkit/kernel:6.6.71
  docker save -o kernel.tar linuxkit/kernel:6.6.71
  # appliance
  swarmboot image import kernel.tar
  swarmboot image ls
  swarmboot build -f linuxkit/worker.yml -o out/

A site that reaches a registry can pull instead:

  swarmboot image pull linuxkit/kernel:6.6.71`,
	}
	cmd.AddCommand(newImageImportCmd(g), newImageLsCmd(g), newImageRmCmd(g), newImagePullCmd(g))
	return cmd
}

func newImageImportCmd(g *Globals) *cobra.Command {
	var opt store.ImportOptions
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Import docker-save tarballs or OCI archives into the image store",
		Long: `Import loads images from files, without any network:

  - a "docker save" tarball (docker save -o f.tar IMAGE...), every tag it holds;
  - an OCI archive: a tar of an OCI image layout, as written by docker save
    (Docker 25+), skopeo copy ... oci-archive:f.tar:NAME, buildx
    --output type=oci or linuxkit cache export --format oci.

Either may be gzip-compressed; FILE "-" reads standard input. Every blob's
digest is checked. From a
multi-platform index the linux/amd64 image is stored (the index itself is
kept, as LinuxKit does); --platform picks another, or "all". An archive that
names no image needs --ref.

Examples:
  swarmboot image import kernel.tar init.tar sshd.tar.gz
  swarmboot image import --platform linux/arm64 alpine-oci.tar
  swarmboot image import --ref linuxkit/getty:v1.0.0 getty-unnamed.tar
  ssh builder docker save linuxkit/sshd:v1.0.0 | swarmboot image import -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(g)
			if err != nil {
				return err
			}
			if opt.Ref != "" && len(args) > 1 {
				return fmt.Errorf("--ref names one image: import one FILE at a time with it")
			}
			for _, f := range args {
				path, cleanup, err := importSource(g, f)
				if err != nil {
					return err
				}
				done := imageProgress(g, "importing "+f)
				refs, err := s.Import(cmd.Context(), path, opt)
				done()
				cleanup()
				if err != nil && path != f {
					return errors.New(strings.ReplaceAll(err.Error(), path, "standard input"))
				}
				if err != nil {
					return err
				}
				for _, r := range refs {
					fmt.Fprintf(g.Stdout, "imported %s from %s\n", r, f)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opt.Platform, "platform", store.DefaultPlatform, `platform to take from multi-platform images: os/arch[/variant] or "all"`)
	cmd.Flags().StringVar(&opt.Ref, "ref", "", "name for an image the archive leaves unnamed (or renames its single image)")
	return cmd
}

// importSource returns the file to import: f itself, or for "-" standard
// input spooled to a temporary file (the importer reads archives twice).
func importSource(g *Globals, f string) (string, func(), error) {
	if f != "-" {
		return f, func() {}, nil
	}
	if g.Stdin == nil {
		return "", nil, fmt.Errorf("import -: no standard input")
	}
	tmp, err := os.CreateTemp("", "swarmboot-import-*.tar")
	if err != nil {
		return "", nil, fmt.Errorf("import -: %w", err)
	}
	cleanup := func() { os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, g.Stdin); err != nil {
		tmp.Close()
		cleanup()
		return "", nil, fmt.Errorf("import -: read standard input: %w", err)
	}
	if err := tmp.Close(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("import -: %w", err)
	}
	return tmp.Name(), cleanup, nil
}

func newImageLsCmd(g *Globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the images in the store",
		Long: `List every stored image, one line per platform: the reference, the platform,
the image ID (the config digest, as "docker images" shows it: compare them
after carrying images to an air-gapped site), the digest the reference points
at (an index or a manifest) and the size.

Example:
  swarmboot image ls
  swarmboot image ls -q    # references only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openImageStore(g)
			if err != nil {
				return err
			}
			ents, err := s.List()
			if err != nil {
				return err
			}
			if quiet {
				seen := map[string]bool{}
				for _, e := range ents {
					if !seen[e.Ref] {
						seen[e.Ref] = true
						fmt.Fprintln(g.Stdout, e.Ref)
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REFERENCE\tPLATFORM\tIMAGE ID\tDIGEST\tSIZE")
			for _, e := range ents {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Ref, e.Platform, imageID(e.Config), imageShortDigest(e.Digest), imageHumanSize(e.Size))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print references only")
	return cmd
}

func newImageRmCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm REF...",
		Aliases: []string{"remove"},
		Short:   "Remove images from the store",
		Long: `Remove the named images and every blob no other stored image uses.

Example:
  swarmboot image rm linuxkit/kernel:6.6.71`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(g)
			if err != nil {
				return err
			}
			for _, r := range args {
				if err := s.Remove(r); err != nil {
					return err
				}
				n, _ := store.Normalize(r)
				fmt.Fprintf(g.Stdout, "removed %s\n", n)
			}
			return nil
		},
	}
}

func newImagePullCmd(g *Globals) *cobra.Command {
	var platform string
	cmd := &cobra.Command{
		Use:   "pull REF...",
		Short: "Pull images from a registry into the store (sites with registry access)",
		Long: `Pull fetches images from their registry into the store. It is the only
command that reaches a registry; builds use the store and never pull unless
given --pull. Credentials come from ~/.docker/config.json (docker login).
Air-gapped sites use "swarmboot image import" instead.

From a multi-platform index the linux/amd64 image is stored; --platform picks
another, or "all".

Example:
  swarmboot image pull linuxkit/init:v1.2.0 linuxkit/runc:v1.1.0`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openImageStore(g)
			if err != nil {
				return err
			}
			for _, r := range args {
				done := imageProgress(g, "pulling "+r)
				err := s.Pull(cmd.Context(), r, platform)
				done()
				if err != nil {
					return err
				}
				n, _ := store.Normalize(r)
				fmt.Fprintf(g.Stdout, "pulled %s\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&platform, "platform", store.DefaultPlatform, `platform to take from multi-platform images: os/arch[/variant] or "all"`)
	return cmd
}

// imageProgress shows what is running on a terminal (stderr) with the elapsed
// time, and nothing otherwise; the returned func clears the line.
func imageProgress(g *Globals, what string) func() {
	if !Terminal(g.Stderr) {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		spin := `|/-\`
		for i := 0; ; i++ {
			fmt.Fprintf(g.Stderr, "\r\033[K%c %s (%s)", spin[i%4], what, time.Since(start).Round(time.Second))
			select {
			case <-stop:
				fmt.Fprint(g.Stderr, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(stop); <-done }
}

// imageID is a config digest the way Docker shows image IDs: 12 hex digits.
func imageID(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) < 12 {
		return d
	}
	return hex[:12]
}

func imageShortDigest(d string) string {
	if i := strings.Index(d, ":"); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func imageHumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

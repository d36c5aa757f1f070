package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/appliance/lab"
)

func newLabCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "The all-on-one-machine lab: images made from Debian packages",
		Long: `lab holds the pieces of the one-machine lab (simulated vCenter, QEMU VMs
netbooting into a Docker swarm). Its image, linuxkit/lab.yml, is made of
images synthesized here from Debian packages, with no registry:

  swarmboot/lab-kernel  Debian's kernel with the modules the engine needs
  swarmboot/lab-init    busybox init running the image's onboot steps and
                        services with runc, the way LinuxKit lays them out
  swarmboot/lab-format  ext4 on the first disk only when it is blank, mounted
                        at /var/lib/docker
  swarmboot/lab-docker  Debian's docker.io, containerd, runc and libraries

Example:
  swarmboot lab images
  swarmboot build -f linuxkit/lab.yml -o out/ --format kernel+initrd`,
	}
	cmd.AddCommand(newLabImagesCmd(g))
	return cmd
}

func newLabImagesCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "images",
		Short: "Synthesize the lab images from Debian packages into the image store",
		Long: `images downloads (apt-get download, cached) and unpacks the Debian packages
the lab image is made of, and writes the four images linuxkit/lab.yml names
into the image store under <data-dir>/images. Run it before building
linuxkit/lab.yml; "make deps" installs what it needs.

Example:
  swarmboot lab images && swarmboot image ls`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openImageStore(g)
			if err != nil {
				return err
			}
			scratch, err := os.MkdirTemp("", "swarmboot-lab-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(scratch)
			start := time.Now()
			fmt.Fprintf(g.Stdout, "synthesizing the lab images from Debian packages into %s\n", s.Dir())
			refs, err := lab.Images(cmd.Context(), s, scratch)
			if err != nil {
				return fmt.Errorf("lab images: %w (run `make deps`; apt must reach Debian mirrors the first time)", err)
			}
			for _, r := range []string{refs.Kernel, refs.Init, refs.Format, refs.Docker} {
				fmt.Fprintf(g.Stdout, "  %s\n", r)
			}
			fmt.Fprintf(g.Stdout, "done in %s (kernel %s); next: swarmboot build -f linuxkit/lab.yml -o out/\n",
				time.Since(start).Round(time.Millisecond), refs.KernelVersion)
			return nil
		},
	}
}

package cli

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
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

"lab up" runs the whole mission (see its --help); "lab down" removes it.

Example:
  sudo swarmboot lab up --reboot-workers
  swarmboot lab images
  swarmboot build -f linuxkit/lab.yml -o out/ --format kernel+initrd`,
	}
	cmd.AddCommand(newLabImagesCmd(g), newLabUpCmd(g), newLabDownCmd(g))
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

func labDir(g *Globals) string { return filepath.Join(g.DataDir, "lab") }

func newLabUpCmd(g *Globals) *cobra.Command {
	var opt lab.Options
	var agent string
	var reboot, roll, exit bool
	var uefi int
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole mission on this machine: appliance, simulated vCenter, QEMU VMs forming a swarm",
		Long: `up builds the lab image (lab images from Debian packages, the swarmboot agent
and the appliance's CA and API URL baked in), creates a network namespace
with a bridge, starts the appliance there (full DHCP, TFTP, HTTP, agent API)
with an in-process vCenter simulator applying a lab site of 1 manager and
--workers workers (boot: pxe; --uefi of them with EFI firmware), and powers
on one QEMU VM (TCG) per simulated VM, with its MAC and an empty disk: BIOS
machines boot SeaBIOS with iPXE in the NIC's ROM, EFI ones OVMF's own UEFI
PXE client, which fetches ipxe.efi over TFTP. Each machine's enrollment
token travels on its iPXE kernel line. Progress shows every machine's stages
(dhcp, tftp, script, kernel, initrd, enroll, swarm-init/join, report), then
the swarm's nodes as the manager's Docker API lists them, each node's disk
and the time of each stage.

--listen (127.0.0.1:8080) forwards the appliance's HTTP server out of the
lab's namespace, so "swarmboot machines" and "swarmboot events -f" watch the
lab from another shell (only /api/…, /metrics and /healthz: boot scripts
carry enrollment tokens and stay on the lab's network). A port in use stops
up before it makes anything and names the program holding it.

Machines boot one after the other; at most --max-vms VMs run at once: past
that, a worker that has joined is powered off (disk kept) to let the next
one boot. --reboot-workers then reboots the workers: they boot again without
enrolling and their disks are "pre-existing". --rotate-workers renews them the
way a site does: it builds the next generation of the lab image (lab-2: another
version) and rolls the workers onto it one at a time with the appliance's roll
(drain through the manager, reset into lab-2, wait for the new version from the
same swarm node, activate), what "swarmboot rotate" does on a site. While the
lab runs, its appliance answers the admin commands too:
  sudo swarmboot --data-dir <data-dir>/lab/appliance node ls

up stays in the foreground (the appliance runs in it) until Ctrl-C or
"swarmboot lab down", which remove everything it made; with --exit it
removes the lab itself after the summary (what "make demo" runs). A stale lab from a
crashed run is removed first. Needs root, /dev/net/tun and QEMU
("make deps").

Example:
  make build && sudo bin/swarmboot lab up --reboot-workers
  sudo bin/swarmboot lab up --rotate-workers --exit
  sudo bin/swarmboot lab down`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if agent == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				agent = filepath.Join(filepath.Dir(exe), "swarmboot-agent")
			}
			if _, err := os.Stat(agent); err != nil {
				return fmt.Errorf("lab up: agent binary: %w (build it with `make build` (bin/swarmboot-agent, CGO_ENABLED=0) or pass --agent)", err)
			}
			if err := lab.Check(); err != nil {
				return err
			}
			s, err := openImageStore(g)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opt.Dir, opt.Images, opt.Agent, opt.Out, opt.Log = labDir(g), s, agent, g.Stdout, g.Log
			opt.UEFI = uefi
			if uefi == 0 {
				opt.UEFI = -1 // lab.Options: 0 is the default (1)
			}
			start := time.Now()
			l, err := lab.Up(ctx, opt)
			if err != nil {
				return err
			}
			defer l.Close()
			formed := time.Since(start)
			info, err := l.Swarm(ctx, start)
			if err != nil {
				return err
			}
			nodes, err := l.Summary()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Stdout, "swarm of %d formed %v after lab up; initrd %.1f MiB\n", len(nodes),
				formed.Round(100*time.Millisecond), float64(l.Initrd)/(1<<20))
			lab.PrintSummary(g.Stdout, info, nodes)
			cpu, rss := l.Usage()
			fmt.Fprintf(g.Stdout, "appliance: CPU %v during the boots, peak RSS %d MiB\n", cpu.Round(100*time.Millisecond), rss>>20)
			if reboot {
				if err := l.RebootWorkers(ctx); err != nil {
					return err
				}
				if info, err = l.Swarm(ctx, time.Now()); err != nil {
					return err
				}
				if nodes, err = l.Summary(); err != nil {
					return err
				}
				fmt.Fprintln(g.Stdout, "after the workers' reboot:")
				lab.PrintSummary(g.Stdout, info, nodes)
			}
			if roll {
				t0 := time.Now()
				v, err := l.RotateWorkers(ctx)
				if err != nil {
					return err
				}
				if info, err = l.Swarm(ctx, time.Now()); err != nil {
					return err
				}
				if nodes, err = l.Summary(); err != nil {
					return err
				}
				fmt.Fprintf(g.Stdout, "after the workers' roll onto %s (%v):\n", v, time.Since(t0).Round(100*time.Millisecond))
				lab.PrintSummary(g.Stdout, info, nodes)
			}
			if exit {
				fmt.Fprintln(g.Stdout, "removing the lab (--exit)")
				return nil // the deferred Close removes everything up made
			}
			fmt.Fprintln(g.Stdout, "lab running; Ctrl-C or `swarmboot lab down` removes it")
			<-ctx.Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opt.YML, "file", "f", "linuxkit/lab.yml", "the lab image's yml")
	f.StringVar(&agent, "agent", "", "static swarmboot-agent binary to bake in (default: next to this swarmboot)")
	f.IntVar(&opt.Workers, "workers", 2, "number of workers (one manager)")
	f.IntVar(&uefi, "uefi", 1, "how many of the workers boot UEFI (OVMF) rather than BIOS; 0 for none")
	f.IntVar(&opt.MaxVMs, "max-vms", 3, "QEMU VMs running at once")
	f.StringVar(&opt.Listen, "listen", "127.0.0.1:8080", "host address forwarded to the appliance's HTTP server in the lab ('' for none)")
	f.BoolVar(&reboot, "reboot-workers", false, "after the swarm forms, reboot the workers and show they stay in it")
	f.BoolVar(&roll, "rotate-workers", false, "after the swarm forms, build the next lab image and roll the workers onto it (swarmboot rotate)")
	f.BoolVar(&exit, "exit", false, "remove the lab after the summary instead of keeping it running (make demo)")
	return cmd
}

func newLabDownCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove the lab: its processes (by recorded PID), taps, bridge, namespace and files",
		Long: `down reads <data-dir>/lab/lab-state.json and stops exactly the processes it
lists (the lab up process and its QEMU VMs; a PID now used by another
program is left alone), deletes the lab's namespace (with its bridge and
taps) and removes <data-dir>/lab. Nothing to remove is not an error.

Example:
  sudo swarmboot lab down`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lab.Down(labDir(g)); err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, "lab removed")
			return nil
		},
	}
}

package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/images/build"
	"github.com/swarmboot/swarmboot/images/fixture"
	"github.com/swarmboot/swarmboot/images/yml"
	"github.com/swarmboot/swarmboot/pkg/qemu"
)

// demoYML is the image the demo builds: only the fixture images imagetest
// synthesizes from Debian packages, so it needs no registry.
var demoYML = fmt.Sprintf(`# swarmboot demo: an image made of fixture images synthesized from Debian's
# linux-image-amd64 and busybox-static.
kernel:
  image: %s
  cmdline: "console=ttyS0 swarmboot.demo=1"
init:
  - %s
onboot:
  - name: hello
    image: %s
services:
  - name: sleeper
    image: %s
files:
  - path: etc/swarmboot/demo
    contents: "built by swarmboot demo\n"
    mode: "0644"
`, fixture.KernelRef, fixture.InitRef, fixture.OnbootRef, fixture.ServiceRef)

// demoBoots are the ways the demo boots the image.
var demoBoots = map[string]qemu.Config{
	"kernel":   {},                            // direct kernel + initrd (what netboot delivers)
	"iso-bios": {Firmware: "bios", Boot: "d"}, // the hybrid ISO under SeaBIOS (isolinux)
	"iso-uefi": {Firmware: "uefi", Boot: "d"}, // the hybrid ISO under OVMF (systemd-boot)
}

var demoBootOrder = []string{"kernel", "iso-bios", "iso-uefi"}

func newDemoCmd(g *Globals) *cobra.Command {
	var boots []string
	var timeout time.Duration
	var out string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build an image from synthesized fixture images and boot it in QEMU",
		Long: `demo runs the main job end to end on this machine, with nothing from outside:

 1. synthesizes LinuxKit-style OCI images from Debian packages (the kernel
    from linux-image-amd64, a busybox init, onboot and service containers)
    into the image store under <data-dir>/images;
 2. builds an image from them with the real builder: kernel + gzip'd initrd
    and a hybrid BIOS/UEFI ISO, under <data-dir>/demo (or --out);
 3. boots the result in QEMU (TCG): the kernel and initrd directly, the ISO
    under SeaBIOS and the ISO under OVMF, and waits on each serial console
    for the image's init to report the kernel command line.

QEMU runs without KVM and without root. The Debian packages the images are
made from come through apt-get the first time (run "make deps" first;
"make demo" does).

Examples:
  swarmboot demo
  swarmboot demo --boot kernel            # fastest: one direct boot
  swarmboot demo --boot iso-uefi --out /tmp/demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, b := range boots {
				if _, ok := demoBoots[b]; !ok {
					return fmt.Errorf("--boot %q: want one of %s", b, strings.Join(demoBootOrder, ", "))
				}
			}
			if err := qemu.Check(); err != nil {
				return fmt.Errorf("%w\n(run `make deps` as root to install what the demo needs)", err)
			}
			if out == "" {
				out = filepath.Join(g.DataDir, "demo")
			}
			return runDemo(cmd.Context(), g, out, boots, timeout)
		},
	}
	cmd.Flags().StringSliceVar(&boots, "boot", demoBootOrder, "boots to run: kernel, iso-bios, iso-uefi")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "give up on a boot after this long")
	cmd.Flags().StringVarP(&out, "out", "o", "", "artifact directory (default <data-dir>/demo)")
	return cmd
}

type demoResult struct {
	boot    string
	took    time.Duration
	outcome string
}

func runDemo(ctx context.Context, g *Globals, out string, boots []string, timeout time.Duration) error {
	w := g.Stdout
	start := time.Now()
	s, err := openImageStore(g)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "==> synthesizing fixture images from Debian packages into %s\n", s.Dir())
	t := time.Now()
	fx, err := fixture.Build(ctx, s)
	if err != nil {
		return fmt.Errorf("demo: fixture images: %w (run `make deps`; apt must reach Debian mirrors the first time)", err)
	}
	fmt.Fprintf(w, "    %s (kernel %s), %s, %s, %s in %s\n", fx.Kernel, fx.KernelVersion, fx.Init, fx.Onboot, fx.Service,
		time.Since(t).Round(time.Millisecond))

	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	ymlPath := filepath.Join(out, "demo.yml")
	if err := os.WriteFile(ymlPath, []byte(demoYML), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := yml.Load(ymlPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "==> building %s into %s\n", ymlPath, out)
	t = time.Now()
	m, err := build.Build(ctx, build.FromYML(cfg, s, ""), build.Options{
		Name: "demo", OutDir: out, Progress: w, Terminal: Terminal(w), Log: g.Log,
	})
	if err != nil {
		return err
	}
	buildTook := time.Since(t)
	files := map[string]string{}
	for _, a := range m.Artifacts {
		files[a.Kind] = filepath.Join(out, a.File)
		fmt.Fprintf(w, "    %-8s %-22s %8.1f MiB  sha256:%.12s\n", a.Kind, a.File, float64(a.Size)/(1<<20), a.SHA256)
	}

	marker := regexp.MustCompile(regexp.QuoteMeta(fixture.Marker) + ` cmdline=(.*)`)
	var results []demoResult
	failed := 0
	for _, b := range boots {
		vc := demoBoots[b]
		vc.MemoryMiB = 512
		vc.LogFile = filepath.Join(out, "serial-"+b+".log")
		if b == "kernel" {
			vc.Kernel, vc.Initrd, vc.Append = files["kernel"], files["initrd"], m.Cmdline
		} else {
			vc.ISO = files["iso"]
		}
		fmt.Fprintf(w, "==> booting %s in QEMU (TCG; serial console in %s)\n", b, vc.LogFile)
		r := demoBoot(ctx, vc, marker, timeout)
		r.boot = b
		if !strings.HasPrefix(r.outcome, "ok") {
			failed++
		}
		fmt.Fprintf(w, "    %s after %s\n", r.outcome, r.took.Round(100*time.Millisecond))
		results = append(results, r)
	}

	fmt.Fprintf(w, "\nsummary (total %s, build %s)\n", time.Since(start).Round(time.Second), buildTook.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BOOT\tTIME TO INIT\tRESULT")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.boot, r.took.Round(100*time.Millisecond), r.outcome)
	}
	tw.Flush()
	if failed > 0 {
		return fmt.Errorf("demo: %d of %d boots failed; see the serial logs in %s", failed, len(results), out)
	}
	return nil
}

func demoBoot(ctx context.Context, vc qemu.Config, marker *regexp.Regexp, timeout time.Duration) demoResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	vm, err := qemu.Start(ctx, vc)
	if err != nil {
		return demoResult{took: time.Since(start), outcome: "FAILED: " + err.Error()}
	}
	defer vm.Stop()
	line, err := vm.WaitFor(ctx, marker)
	took := time.Since(start)
	if err != nil {
		return demoResult{took: took, outcome: "FAILED: " + err.Error()}
	}
	cmdline := marker.FindStringSubmatch(line)[1]
	return demoResult{took: took, outcome: "ok: init saw cmdline " + strings.TrimSpace(cmdline)}
}

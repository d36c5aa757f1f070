// Package cli holds the swarmboot command line: one file per command group,
// each a thin layer from flags to the packages that do the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/pkg/version"
)

// Globals are the options and streams every command shares.
type Globals struct {
	DataDir  string // --data-dir, $SWARMBOOT_DATA, ~/.local/share/swarmboot
	LogLevel string // --log-level

	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Log            *slog.Logger
}

// Terminal reports whether w is an interactive terminal (progress bars are
// drawn only there; plain lines otherwise).
func Terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// ExitError carries a process exit code other than 1 (for example "plan"
// exits 2 when there are changes). A nil Err prints nothing.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// defaultDataDir is $SWARMBOOT_DATA, else ~/.local/share/swarmboot.
func defaultDataDir() string {
	if d := os.Getenv("SWARMBOOT_DATA"); d != "" {
		return d
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "swarmboot")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".swarmboot"
	}
	return filepath.Join(home, ".local", "share", "swarmboot")
}

// NewRoot returns the swarmboot command tree.
func NewRoot(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "swarmboot",
		Short: "Boot-serving appliance for Docker Swarm on VMware vSphere",
		Long: `swarmboot builds immutable LinuxKit OS images, pushes them to a vSphere
datastore, creates the VMs in vCenter and boots them from the ISO or over the
network (DHCP/TFTP/HTTP with iPXE). An agent in each image enrolls with the
appliance, joins the Docker swarm and reports whether /var/lib/docker lives on
a persistent disk.

Typical flow on a site:
  swarmboot image import kernel.tar     # air-gapped: load the images the yml names
  swarmboot build -f linuxkit/worker.yml -o out/
  swarmboot plan && swarmboot apply     # converge the VMs of swarmboot.yml
  swarmboot serve --interface eth1      # DHCP/TFTP/HTTP for netbooting workers`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.LogLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", g.LogLevel)
			}
			g.Log = slog.New(slog.NewTextHandler(g.Stderr, &slog.HandlerOptions{Level: lvl}))
			return nil
		},
	}
	root.SetIn(g.Stdin)
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.DataDir, "data-dir", defaultDataDir(), "where images, artifacts and state live ($SWARMBOOT_DATA)")
	pf.StringVar(&g.LogLevel, "log-level", "info", "debug, info, warn or error")

	for _, c := range commands {
		root.AddCommand(c(g))
	}
	return root
}

// commands lists the constructors of the top-level commands. Each command
// group lives in its own file and adds itself here.
var commands = []func(*Globals) *cobra.Command{
	newVersionCmd,
	newImageCmd,
	newBuildCmd,
	newServeCmd,
	newMachinesCmd,
	newEventsCmd,
	newTokenCmd,
	newNodeCmd,
	newDemoCmd,
	newLabCmd,
	newPushCmd,
	newPlanCmd,
	newApplyCmd,
	newDestroyCmd,
	newApplianceCmd,
	newRotateCmd,
}

func newVersionCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the swarmboot version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(g.Stdout, "swarmboot %s\n", version.Version)
			return err
		},
	}
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &Globals{Stdin: stdin, Stdout: stdout, Stderr: stderr,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	root := NewRoot(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(stderr, "swarmboot:", ee.Err)
		}
		return ee.Code
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "swarmboot") {
		msg = "swarmboot: " + msg
	}
	fmt.Fprintln(stderr, msg)
	return 1
}

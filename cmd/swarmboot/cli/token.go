package cli

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/enroll"
)

func newTokenCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "One-time enrollment tokens for machines swarmboot did not create",
		Long: `Enrollment tokens let a machine's agent get its node certificate from the
appliance once. VMs that swarmboot creates get theirs automatically (in
guestinfo.swarmboot.token). For anything else — netbooted bare metal, a QEMU
guest — create one here and hand it to that machine only.`,
	}
	cmd.AddCommand(newTokenCreateCmd(g))
	return cmd
}

func newTokenCreateCmd(g *Globals) *cobra.Command {
	var f enroll.TokenFor
	var ttl time.Duration
	var out string
	var kernelLine bool
	cmd := &cobra.Command{
		Use:   "create --vm NAME | --mac MAC",
		Short: "Create a one-time enrollment token and print it once",
		Long: `Create a one-time enrollment token for one machine. The token is printed
once (or written to --out, mode 0600); the appliance keeps only its SHA-256
hash, bound to the machine's BIOS UUID or MAC, valid for --ttl.

While the appliance runs, the token is made by it (through its admin
socket, <data-dir>/admin.sock: run as root or as the appliance's user);
otherwise on the store directly. The output is the same either way.

Give it to the machine on its kernel command line (the per-machine iPXE
script) as swarmboot.token=TOKEN, or as the file /etc/swarmboot/token. The
token never goes into an image or a URL; once the agent has enrolled, it is
spent and useless.

With --kernel-line (running appliance only) the appliance also serves the
token on that machine's iPXE kernel line (swarmboot.token=… in
/boot/<mac>.ipxe) until it expires or the machine enrolls — how a netbooted
machine gets it without anyone typing it; see docs/daemon.md for the
trade-off of a token in a plain-HTTP script.

Examples:
  swarmboot token create --mac 52:54:00:12:34:56 --ttl 2h
  swarmboot token create --mac 52:54:00:12:34:56 --kernel-line
  swarmboot token create --vm worker-07 --out /run/worker-07.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.VM == "" && f.MAC == "" {
				return fmt.Errorf("name the machine: --vm NAME (a VM swarmboot created) or --mac MAC (any machine)")
			}
			if hw, err := net.ParseMAC(f.MAC); f.MAC != "" && (err != nil || len(hw) != 6) {
				return fmt.Errorf("--mac %q: not an Ethernet MAC (like 52:54:00:12:34:56)", f.MAC)
			}
			ops, done, err := openAdmin(cmd.Context(), g, !kernelLine)
			if err != nil {
				return err
			}
			defer done()
			req := admin.TokenRequest{VM: f.VM, MAC: f.MAC, BIOSUUID: f.BIOSUUID, TTL: ttl.String(), KernelLine: kernelLine}
			if kernelLine && !cmd.Flags().Changed("ttl") {
				req.TTL = "" // the appliance's --token-ttl
			}
			resp, err := ops.CreateToken(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("token create: %w", err)
			}
			tok := resp.Token
			valid := ttl.String()
			if kernelLine {
				valid = "until " + resp.Expires.Format(time.RFC3339)
				fmt.Fprintf(g.Stderr, "on the iPXE kernel line of %s until %s or until it enrolls\n", resp.MAC, resp.Expires.Format(time.RFC3339))
			}
			if out != "" {
				if err := os.WriteFile(out, []byte(tok+"\n"), 0o600); err != nil {
					return fmt.Errorf("token create: %w (the token was stored; create a new one)", err)
				}
				fmt.Fprintf(g.Stderr, "token written to %s (valid %s); pass it as swarmboot.token= or /etc/swarmboot/token\n", out, valid)
				return nil
			}
			fmt.Fprintln(g.Stdout, tok)
			if Terminal(g.Stdout) {
				fmt.Fprintf(g.Stderr, "shown once, valid %s: add swarmboot.token=<token> to the machine's kernel command line\n", valid)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.VM, "vm", "", "VM name (a VM swarmboot created; bound to its BIOS UUID)")
	fl.StringVar(&f.MAC, "mac", "", "MAC address of the machine (bare metal, QEMU)")
	fl.StringVar(&f.BIOSUUID, "uuid", "", "also bind the token to this BIOS UUID")
	fl.DurationVar(&ttl, "ttl", enroll.DefaultTTL, "how long the token stays valid")
	fl.StringVar(&out, "out", "", "write the token to this file (0600) instead of stdout")
	fl.BoolVar(&kernelLine, "kernel-line", false, "running appliance only: also serve the token on the machine's iPXE kernel line (bound to its MAC; --ttl defaults to the appliance's --token-ttl)")
	return cmd
}

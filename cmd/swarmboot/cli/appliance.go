package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/appliance/daemon"
	"github.com/swarmboot/swarmboot/appliance/site"
)

// applianceEnv maps the appliance's own flags to environment variables
// (the boot flags use serveEnv).
var applianceEnv = map[string]string{
	"api-addr": "SWARMBOOT_API_ADDR", "api-url": "SWARMBOOT_API_URL", "site": "SWARMBOOT_SITE",
}

func newApplianceCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "appliance",
		Short: "Run the whole appliance as one process",
		Long: `The appliance is one process: the state store, DHCP/TFTP/HTTP boot serving,
the TLS agent API for enrollment, swarm plans and reports, and (with --site)
the vCenter fleet. See "swarmboot appliance run --help".`,
	}
	cmd.AddCommand(newApplianceRunCmd(g))
	return cmd
}

func newApplianceRunCmd(g *Globals) *cobra.Command {
	var (
		f        serveFile
		cfgPath  string
		apiAddr  string
		apiURL   string
		apiHosts []string
		sitePath string
		simulate bool
		trust    bool
		tokens   []string
		tokenTTL time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Serve boots, enrollment and the fleet from one process",
		Long: `run starts the appliance: everything "swarmboot serve" does (DHCP proxy/full/
off, TFTP for iPXE loaders, HTTP for iPXE scripts and artifacts) plus the
agent API (TLS, --api-addr) and the state store under --data-dir.

What a machine boots comes from the store: a VM that the site's apply
recorded (its MAC) boots its group's image from --artifacts (NAME-kernel,
NAME-initrd.img, NAME-cmdline). Machines the store does not know get a
"register and retry" script, unless --default-image or a machines: table in
--config says otherwise.

With --site the site file is applied at start (VMs created in vCenter and
recorded); with --simulate that happens on an in-process vCenter simulator
(nothing real is touched) — the lab's vCenter.

Netbooted machines get their one-time enrollment token on their iPXE kernel
line (swarmboot.token=…): --token MAC|VM issues one at start (--token all:
every VM of the store with no node yet; revoked nodes are re-admitted only
by name). The token lives only in memory and on that kernel line; the store
keeps its hash; it expires after --token-ttl and is spent when the machine
enrolls. Images built without the appliance's URL and CA get them from an
extra initrd with --trust-initrd.

While it runs, the local admin socket <data-dir>/admin.sock (root or this
user only) answers the day-2 commands, run with the same --data-dir from
another shell:

  swarmboot token create --mac MAC|--vm VM   a one-time enrollment token
      (--kernel-line: also on that machine's iPXE kernel line, for bare
      metal netbooted later; only the running appliance can do that)
  swarmboot node ls                          enrolled nodes, their image
      version and swarm state
  swarmboot node revoke NAME                 refuse its certificate, take
      its swarm node out of the swarm through a manager
  swarmboot rotate --group G --image BUILD   roll a group onto a new build,
      one node at a time (drain, reset, wait, activate); the roll runs in
      the appliance: only while it runs (docs/rotate.md)
  swarmboot rotate status                    how the latest roll goes

token create, node ls, node revoke and rotate status also work with the
appliance stopped (on the store directly).

Every step of every machine (DHCP, TFTP, script, kernel, initrd, enroll,
swarm init/join, report; renew, revoke, swarm-op, rotate) lands in the
store and on the timeline:
"swarmboot machines" and "swarmboot events MAC" ask the HTTP address.

Flags, environment (SWARMBOOT_INTERFACE, SWARMBOOT_DHCP, SWARMBOOT_ARTIFACTS,
SWARMBOOT_HTTP_ADDR, SWARMBOOT_TFTP_ADDR, SWARMBOOT_API_ADDR,
SWARMBOOT_API_URL, SWARMBOOT_SITE, …) and the --config file of
"swarmboot serve" layer as there: flags win over the environment, which
wins over the file.

Examples:
  swarmboot build -f linuxkit/worker.yml -o out/
  swarmboot appliance run --interface eth1 --artifacts out/ --site swarmboot.yml
  swarmboot appliance run --interface br-lab --dhcp full --config boot.yml \
      --site lab.yml --simulate --token all --trust-initrd

  # later, from another shell, with the appliance running:
  swarmboot build -f linuxkit/worker.yml -o out/ --name worker-2027q1
  swarmboot rotate --group workers --image worker-2027q1 --dry-run
  swarmboot rotate --group workers --image worker-2027q1
  swarmboot rotate status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			if err := applyServeConfig(fl, cfgPath, &f); err != nil {
				return err
			}
			for name, p := range map[string]*string{"api-addr": &apiAddr, "api-url": &apiURL, "site": &sitePath} {
				if v := os.Getenv(applianceEnv[name]); v != "" && !fl.Changed(name) {
					*p = v
				}
			}
			bc, err := f.config(g)
			if err != nil {
				return err
			}
			// The machines table and --default-image of serve's config
			// boot the machines the store does not know.
			fallback := bc.Booter
			if f.DefaultImage == "" && len(f.Machines) == 0 {
				fallback = nil
			}
			bc.Booter = fallback
			cfg := daemon.Config{DataDir: g.DataDir, Artifacts: f.Artifacts, DefaultImage: f.DefaultImage, Boot: bc,
				APIAddr: apiAddr, APIURL: apiURL, APIHosts: apiHosts, TrustInitrd: trust, Simulate: simulate,
				TokenTTL: tokenTTL, Log: g.Log}
			if simulate && sitePath == "" {
				return fmt.Errorf("--simulate needs --site: the site file whose groups the simulated vCenter gets")
			}
			if sitePath != "" {
				if cfg.Site, err = site.Load(sitePath); err != nil {
					return err
				}
			}
			return runAppliance(cmd.Context(), g, cfg, tokens)
		},
	}
	fl := cmd.Flags()
	// The boot flags are serve's, with the same names, defaults and
	// environment variables (applyServeConfig layers them); some of their
	// help says what they mean for the appliance.
	addServeFlags(fl, &cfgPath, &f)
	for name, usage := range map[string]string{
		"config":        "YAML config file of `swarmboot serve` (interface, dhcp, pool, machines, …)",
		"http-addr":     "HTTP listen address (iPXE scripts, artifacts, /api, /metrics)",
		"default-image": "image for VMs without one, and for machines the store does not know",
		"ipv6-ra":       "minimal IPv6 router advertisements so iPXE skips its ~13 s IPv6 wait: auto (on with --dhcp full), on, off",
	} {
		fl.Lookup(name).Usage = usage
	}
	fl.StringVar(&apiAddr, "api-addr", fmt.Sprintf(":%d", daemon.DefaultAPIPort), "agent API listen address (TLS)")
	fl.StringVar(&apiURL, "api-url", "", "agent API URL as agents reach it (default https://SERVER-IP:API-PORT)")
	fl.StringSliceVar(&apiHosts, "api-host", nil, "more DNS names or IPs for the agent API's certificate")
	fl.StringVar(&sitePath, "site", "", "site file (swarmboot.yml) to apply at start")
	fl.BoolVar(&simulate, "simulate", false, "apply --site on an in-process vCenter simulator (nothing real is touched)")
	fl.BoolVar(&trust, "trust-initrd", false, "add an initrd with the appliance URL and CA for images built without them")
	fl.StringSliceVar(&tokens, "token", nil, "issue a kernel-line enrollment token at start for MAC or VM name (repeat; \"all\": every VM not enrolled)")
	fl.DurationVar(&tokenTTL, "token-ttl", 30*time.Minute, "lifetime of --token tokens")
	return cmd
}

// runAppliance runs the daemon until ctx ends.
func runAppliance(ctx context.Context, g *Globals, cfg daemon.Config, tokens []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Listen(); err != nil {
		return err
	}
	fmt.Fprintf(g.Stderr, "swarmboot appliance: DHCP %s, HTTP %s, agent API %s, store %s (Ctrl-C stops)\n",
		cfg.Boot.DHCP, d.HTTPBase(), d.APIURL(), filepath.Join(cfg.DataDir, "swarmboot.db"))
	if cfg.TrustInitrd {
		fmt.Fprintf(g.Stderr, "trust initrd: %s\n", filepath.Join(cfg.Artifacts, daemon.TrustInitrdName))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	if len(tokens) > 0 || cfg.Site != nil {
		select {
		case <-d.Applied():
		case err := <-done:
			return err
		}
		if err := d.ApplyErr(); err != nil {
			fmt.Fprintf(g.Stderr, "apply %s failed: %v (serving on; fix the site and restart)\n", cfg.Site.Path, err)
		} else if cfg.Site != nil {
			fmt.Fprintf(g.Stderr, "site %s applied\n", cfg.Site.Path)
		}
		if err := issueTokens(g, d, tokens, cfg.TokenTTL); err != nil {
			cancel()
			<-done
			return err
		}
	}
	return <-done
}

// issueTokens puts an enrollment token on the kernel line of each named
// machine ("all": every VM not enrolled). Tokens are never printed.
func issueTokens(g *Globals, d *daemon.Daemon, who []string, ttl time.Duration) error {
	var names []string
	for _, w := range who {
		if w != "all" {
			names = append(names, w)
			continue
		}
		vms, err := d.Unenrolled()
		if err != nil {
			return err
		}
		for _, vm := range vms {
			names = append(names, vm.Name)
		}
	}
	for _, n := range names {
		if _, err := d.IssueToken(n, ttl); err != nil {
			return fmt.Errorf("--token %s: %w", n, err)
		}
		mac, _ := d.MACOf(n)
		fmt.Fprintf(g.Stderr, "enrollment token for %s (%s) on its iPXE kernel line, valid %s\n", n, mac, ttl)
	}
	return nil
}

package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
)

// serveFile is the --config file of `swarmboot serve` (YAML). Flags and
// SWARMBOOT_* variables override it.
type serveFile struct {
	Interface    string                            `yaml:"interface"`
	ServerIP     string                            `yaml:"server_ip"`
	DHCP         string                            `yaml:"dhcp"`
	Artifacts    string                            `yaml:"artifacts"`
	HTTPAddr     string                            `yaml:"http_addr"`
	HTTPBase     string                            `yaml:"http_base"`
	TFTPAddr     string                            `yaml:"tftp_addr"`
	IPXEDir      string                            `yaml:"ipxe_dir"`
	EFILoader    string                            `yaml:"efi_loader"`
	DefaultImage string                            `yaml:"default_image"`
	IPv6RA       string                            `yaml:"ipv6_ra"`
	Pool         *poolFile                         `yaml:"pool"`
	Machines     map[string]bootserve.MachineEntry `yaml:"machines"`
}

type poolFile struct {
	Start     string   `yaml:"start"`
	End       string   `yaml:"end"`
	Netmask   string   `yaml:"netmask"`
	Router    string   `yaml:"router"`
	DNS       []string `yaml:"dns"`
	LeaseTime string   `yaml:"lease_time"`
	// Reservations maps a MAC to the address it always gets.
	Reservations map[string]string `yaml:"reservations"`
}

// serveEnv maps flags to their environment variables.
var serveEnv = map[string]string{
	"interface": "SWARMBOOT_INTERFACE", "dhcp": "SWARMBOOT_DHCP", "artifacts": "SWARMBOOT_ARTIFACTS",
	"http-addr": "SWARMBOOT_HTTP_ADDR", "tftp-addr": "SWARMBOOT_TFTP_ADDR", "config": "SWARMBOOT_CONFIG",
	"server-ip": "SWARMBOOT_SERVER_IP", "http-base": "SWARMBOOT_HTTP_BASE", "ipxe-dir": "SWARMBOOT_IPXE_DIR",
	"default-image": "SWARMBOOT_DEFAULT_IMAGE", "ipv6-ra": "SWARMBOOT_IPV6_RA",
}

func newServeCmd(g *Globals) *cobra.Command {
	var f serveFile
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve network boots: DHCP, TFTP and HTTP/iPXE",
		Long: `serve answers PXE and iPXE clients on one network interface and boots them
into the images of an artifacts directory (the output of "swarmboot build":
NAME-kernel, NAME-initrd.img, NAME-cmdline).

DHCP modes:
  proxy  (default) the site's DHCP server hands out addresses; serve answers
         only PXE clients with a boot file (ports 67 and 4011).
  full   serve hands out addresses from its own pool (--config: pool) and
         persists leases; for isolated provisioning networks.
  off    no DHCP: the site's DHCP server points PXE clients at this host
         (next-server = this host, filename undionly.kpxe or ipxe.efi, and
         http://HOST:8080/boot/${mac}.ipxe for iPXE clients).

BIOS clients get undionly.kpxe, UEFI clients ipxe.efi (from Debian's ipxe
package, or --ipxe-dir) over TFTP; iPXE then fetches its script from
/boot/<mac>.ipxe. With --ipv6-ra (default in full mode) serve sends minimal
IPv6 router advertisements (no prefix, lifetime 0) so that iPXE does not
wait ~13 s for one. Every step lands on the machine's timeline: see
"swarmboot machines" and "swarmboot events MAC". Prometheus metrics are at
/metrics on the HTTP address.

Every flag can also come from the environment (SWARMBOOT_INTERFACE,
SWARMBOOT_DHCP, SWARMBOOT_ARTIFACTS, SWARMBOOT_HTTP_ADDR, SWARMBOOT_TFTP_ADDR,
SWARMBOOT_CONFIG, …) or from a YAML --config file; flags win over the
environment, which wins over the file.

Examples:
  swarmboot build -f linuxkit/worker.yml -o out/
  swarmboot serve --interface eth1 --artifacts out/
  swarmboot serve --interface br-boot --dhcp full --config boot.yml

A config file:
  interface: eth1
  dhcp: full
  artifacts: /srv/swarmboot/out
  default_image: worker
  pool:
    start: 10.77.0.100
    end: 10.77.0.199
    netmask: 255.255.255.0
    router: 10.77.0.1
    lease_time: 1h
    reservations: {52:54:00:12:34:56: 10.77.0.10}
  machines:
    52:54:00:12:34:56: {image: manager, args: "swarmboot.role=manager"}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyServeConfig(cmd.Flags(), cfgPath, &f); err != nil {
				return err
			}
			cfg, err := f.config(g)
			if err != nil {
				return err
			}
			s, err := bootserve.New(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			fmt.Fprintf(g.Stderr, "swarmboot serve: DHCP %s on %s, HTTP %s, TFTP %s (Ctrl-C stops)\n",
				cfg.DHCP, cfg.Interface, s.HTTPBase(), cfg.TFTPAddr)
			return s.Run(ctx)
		},
	}
	addServeFlags(cmd.Flags(), &cfgPath, &f)
	return cmd
}

// addServeFlags registers the boot flags of `swarmboot serve` on fl, bound
// to cfgPath and f. `swarmboot appliance` registers the same ones, so both
// commands share names, defaults and environment variables (serveEnv).
func addServeFlags(fl *pflag.FlagSet, cfgPath *string, f *serveFile) {
	fl.StringVarP(cfgPath, "config", "c", "", "YAML config file (see above)")
	fl.StringVarP(&f.Interface, "interface", "i", "", "boot network interface")
	fl.StringVar(&f.ServerIP, "server-ip", "", "our IPv4 address on the boot network (default: the interface's first)")
	fl.StringVar(&f.DHCP, "dhcp", "proxy", "DHCP mode: proxy, full or off")
	fl.StringVar(&f.Artifacts, "artifacts", "out", "directory of NAME-kernel/NAME-initrd.img/NAME-cmdline (swarmboot build -o)")
	fl.StringVar(&f.HTTPAddr, "http-addr", ":8080", "HTTP listen address")
	fl.StringVar(&f.HTTPBase, "http-base", "", "URL machines reach the HTTP server at (default http://SERVER-IP:PORT)")
	fl.StringVar(&f.TFTPAddr, "tftp-addr", ":69", "TFTP listen address")
	fl.StringVar(&f.IPXEDir, "ipxe-dir", "", "directory with undionly.kpxe and ipxe.efi (default: Debian's /usr/lib/ipxe)")
	fl.StringVar(&f.DefaultImage, "default-image", "", "image for machines without an entry (default: the only image in --artifacts)")
	fl.StringVar(&f.IPv6RA, "ipv6-ra", "auto", "send minimal IPv6 router advertisements so iPXE skips its ~13 s IPv6 wait: auto (on with --dhcp full), on, off")
}

// fields names the string settings of f by flag name.
func (f *serveFile) fields() map[string]*string {
	return map[string]*string{"interface": &f.Interface, "server-ip": &f.ServerIP, "dhcp": &f.DHCP,
		"artifacts": &f.Artifacts, "http-addr": &f.HTTPAddr, "http-base": &f.HTTPBase, "tftp-addr": &f.TFTPAddr,
		"ipxe-dir": &f.IPXEDir, "default-image": &f.DefaultImage, "ipv6-ra": &f.IPv6RA}
}

// applyServeConfig layers flag defaults < config file < environment < flags
// set on the command line into f (which holds the flag values).
func applyServeConfig(fl *pflag.FlagSet, cfgPath string, f *serveFile) error {
	if !fl.Changed("config") {
		if v := os.Getenv(serveEnv["config"]); v != "" {
			cfgPath = v
		}
	}
	cur := f.fields()
	if cfgPath != "" {
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			return fmt.Errorf("read --config: %w", err)
		}
		var file serveFile
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&file); err != nil && err != io.EOF {
			return fmt.Errorf("%s: %w (see `swarmboot serve --help` for the keys)", cfgPath, err)
		}
		for name, p := range file.fields() {
			if *p != "" && !fl.Changed(name) {
				*cur[name] = *p
			}
		}
		f.Pool, f.Machines, f.EFILoader = file.Pool, file.Machines, file.EFILoader
	}
	for name, p := range cur {
		if v := os.Getenv(serveEnv[name]); v != "" && !fl.Changed(name) {
			*p = v
		}
	}
	return nil
}

func (f *serveFile) config(g *Globals) (bootserve.Config, error) {
	mode, err := dhcp.ParseMode(f.DHCP)
	if err != nil {
		return bootserve.Config{}, fmt.Errorf("--dhcp: %w", err)
	}
	machines, err := bootserve.NormalizeMachines(f.Machines)
	if err != nil {
		return bootserve.Config{}, fmt.Errorf("config machines: %w", err)
	}
	cfg := bootserve.Config{
		Interface: f.Interface, DHCP: mode, HTTPAddr: f.HTTPAddr, TFTPAddr: f.TFTPAddr, HTTPBase: f.HTTPBase,
		Artifacts: f.Artifacts, IPXEDir: f.IPXEDir, EFILoader: f.EFILoader,
		StateDir: filepath.Join(g.DataDir, "bootserve"),
		Booter:   &bootserve.DirBooter{Dir: f.Artifacts, Default: f.DefaultImage, Machines: machines},
		Log:      g.Log,
	}
	switch f.IPv6RA {
	case "", "auto":
		cfg.RouterAdverts = mode == dhcp.ModeFull
	case "on":
		cfg.RouterAdverts = true
	case "off":
	default:
		return cfg, fmt.Errorf("--ipv6-ra %q: want auto, on or off", f.IPv6RA)
	}
	if f.ServerIP != "" {
		if cfg.ServerIP = net.ParseIP(f.ServerIP).To4(); cfg.ServerIP == nil {
			return cfg, fmt.Errorf("--server-ip %q is not an IPv4 address", f.ServerIP)
		}
	}
	if mode == dhcp.ModeFull {
		if f.Pool == nil {
			return cfg, fmt.Errorf("--dhcp full needs a pool in --config (pool: {start: 10.77.0.100, end: 10.77.0.199, netmask: 255.255.255.0})")
		}
		if cfg.Pool, err = f.Pool.pool(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func (p *poolFile) pool() (*dhcp.Pool, error) {
	ip := func(what, s string) (net.IP, error) {
		v := net.ParseIP(s).To4()
		if v == nil {
			return nil, fmt.Errorf("config pool %s %q is not an IPv4 address", what, s)
		}
		return v, nil
	}
	out := &dhcp.Pool{}
	var err error
	if out.Start, err = ip("start", p.Start); err != nil {
		return nil, err
	}
	if out.End, err = ip("end", p.End); err != nil {
		return nil, err
	}
	mask := p.Netmask
	if mask == "" {
		mask = "255.255.255.0"
	}
	m, err := ip("netmask", mask)
	if err != nil {
		return nil, err
	}
	out.Netmask = net.IPMask(m)
	if p.Router != "" {
		if out.Router, err = ip("router", p.Router); err != nil {
			return nil, err
		}
	}
	for _, d := range p.DNS {
		v, err := ip("dns", d)
		if err != nil {
			return nil, err
		}
		out.DNS = append(out.DNS, v)
	}
	for mac, addr := range p.Reservations {
		v, err := ip("reservation for "+mac, addr)
		if err != nil {
			return nil, err
		}
		if out.Reservations == nil {
			out.Reservations = map[string]net.IP{}
		}
		out.Reservations[mac] = v
	}
	if p.LeaseTime != "" {
		if out.LeaseTime, err = time.ParseDuration(p.LeaseTime); err != nil {
			return nil, fmt.Errorf("config pool lease_time %q: %w (e.g. 1h)", p.LeaseTime, err)
		}
	}
	return out, nil
}

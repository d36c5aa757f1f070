// Package daemon is the appliance as one process. It composes what the
// other appliance packages provide, without reimplementing any of it:
//
//   - the state store (appliance/store) under the data dir;
//   - boot serving (bootserve.Server: DHCP, TFTP, HTTP/iPXE) with a Booter
//     backed by the store: a MAC the store knows (a VM `apply` recorded)
//     boots its image from the artifacts directory;
//   - per-MAC kernel command line additions held in memory only, which is
//     how a one-time enrollment token reaches a netbooted machine
//     (swarmboot.token=… on its iPXE kernel line; see IssueToken);
//   - the boot timeline mirrored into the store's events and the store's
//     events (enroll, swarm init/join, report) mirrored onto the timeline,
//     so both `swarmboot events MAC` and the store show a machine's whole
//     history;
//   - the TLS agent API (appliance/enroll) on its own listener;
//   - the local admin API (appliance/admin) on the unix socket
//     DataDir/admin.sock: tokens, revocation, the node list and rolls
//     onto a new image (appliance/rotate, run here because they wait for
//     heartbeats) for the CLI while this process holds the store;
//   - optionally a vCenter (appliance/vsphere, appliance/fleet), or an
//     in-process govmomi simulator, whose site is applied at start.
//
// A caller (the `swarmboot appliance run` command, the lab, tests) builds
// one with New, opens its sockets with Listen (inside a network namespace
// if it wants: call Listen from netns.NS.Do), runs it with Run until its
// context ends, and releases it with Close:
//
//	d, err := daemon.New(daemon.Config{DataDir: dir, Artifacts: "out",
//		Boot: bootserve.Config{Interface: "br0", DHCP: dhcp.ModeFull, Pool: pool}})
//	if err != nil { return err }
//	defer d.Close()
//	if err := d.Listen(); err != nil { return err }
//	go d.Run(ctx)
//	tok, err := d.IssueToken("52:54:00:12:34:56", 30*time.Minute)
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/swarmboot/swarmboot/appliance/admin"
	"github.com/swarmboot/swarmboot/appliance/enroll"
	"github.com/swarmboot/swarmboot/appliance/fleet"
	"github.com/swarmboot/swarmboot/appliance/site"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/appliance/vsphere"
	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// DefaultAPIPort is the agent API's port when APIAddr is empty.
const DefaultAPIPort = 8443

// Config configures a Daemon. Zero values are the documented defaults.
type Config struct {
	// DataDir holds the store (swarmboot.db), the CA (ca/), the boot
	// server's state (bootserve/: staged loaders, leases) and the admin
	// socket (admin.sock, while Run runs). Required.
	DataDir string
	// Artifacts is the directory of NAME-kernel, NAME-initrd.img and
	// NAME-cmdline (`swarmboot build -o`). A VM boots the image its store
	// record names (the site group's image:), else DefaultImage, else
	// the only image in the directory.
	Artifacts    string
	DefaultImage string
	// Boot configures boot serving (interface, DHCP mode and pool,
	// listen addresses, …). Booter, StateDir, Artifacts, Timeline and
	// Log are set by the daemon; Boot.Booter, when set, is asked about
	// machines the store and the token table do not know.
	Boot bootserve.Config
	// APIAddr is the agent API's TLS listen address (":8443"), unless
	// APIListener is given (tests pass a 127.0.0.1:0 listener).
	APIAddr     string
	APIListener net.Listener
	// APIURL is the agent API's URL as agents reach it ("" →
	// https://<boot server IP>:<port of the API listener>). Its host goes
	// into the API's server certificate.
	APIURL string
	// APIHosts are more names or IPs for the API's server certificate.
	APIHosts []string
	// TrustInitrd adds an initrd carrying /etc/swarmboot/appliance.json
	// and ca.pem (the appliance URL and CA, nothing secret) to every
	// boot, for images built without them. Listen writes it into
	// Artifacts as TrustInitrdName.
	TrustInitrd bool
	// Site, when set, is applied at start (VMs created and recorded in
	// the store). With Simulate its vCenter and placement are replaced by
	// an in-process govmomi simulator's.
	Site     *site.Site
	Simulate bool
	// Swarm is an existing swarm's manager (nil → swarmboot-managed).
	Swarm swarm.Source
	// TokenTTL is IssueToken's default lifetime (0 → 30 min).
	TokenTTL time.Duration
	// MirrorEvery is how often events are mirrored between the timeline
	// and the store (0 → 250 ms).
	MirrorEvery time.Duration
	// ResetVM hard-resets the VM named vmName for a roll (swarmboot
	// rotate), returning once the reset is done. Nil → through vCenter
	// (the site's; a roll is refused without one). The lab plugs in the
	// reset of the QEMU machine that plays the simulator's VM.
	ResetVM func(ctx context.Context, vmName string) error
	// RotatePoll is how often a roll looks at heartbeats and the swarm's
	// node list (0 → 1 s).
	RotatePoll time.Duration
	// Log is the structured logger (nil → discard). No token reaches it.
	Log *slog.Logger
}

// Daemon is one running appliance.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	st      *store.Store
	tl      *timeline.Log
	boot    *bootserve.Server
	api     *enroll.Server
	apiLn   net.Listener
	apiURL  string
	adminLn net.Listener
	trust   string // artifact name of the trust initrd ("" → none)
	args    *kernelArgs
	mirror  *mirror
	vc      *vcenter
	rot     rotations
	closers []func()
}

// New opens the store and the CA under cfg.DataDir, starts the vCenter
// simulator when asked, and prepares every server; nothing listens yet.
// When the boot server's IP comes from cfg.Boot.Interface, call New where
// that interface is (inside the lab's namespace: from netns.NS.Do).
func New(cfg Config) (d *Daemon, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("daemon: Config.DataDir is empty: give the appliance's data directory (--data-dir)")
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = ":" + strconv.Itoa(DefaultAPIPort)
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 30 * time.Minute
	}
	if cfg.MirrorEvery <= 0 {
		cfg.MirrorEvery = 250 * time.Millisecond
	}
	d = &Daemon{cfg: cfg, log: cfg.Log, tl: cfg.Boot.Timeline, args: newKernelArgs()}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.tl == nil {
		d.tl = &timeline.Log{}
	}
	built := d // the error returns below set d to nil
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	if d.st, err = store.Open(store.DefaultPath(cfg.DataDir)); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { _ = built.st.Close() })

	bc := cfg.Boot
	bc.Booter = &booter{d: d, fallback: cfg.Boot.Booter}
	bc.StateDir = filepath.Join(cfg.DataDir, "bootserve")
	bc.Artifacts = cfg.Artifacts
	bc.Timeline = d.tl
	bc.Log = d.log.With("part", "boot")
	if d.boot, err = bootserve.New(bc); err != nil {
		return nil, err
	}

	host, err := apiHost(cfg, d.boot.ServerIP())
	if err != nil {
		return nil, err
	}
	if d.api, err = enroll.New(cfg.DataDir, d.st, append([]string{host}, cfg.APIHosts...)...); err != nil {
		return nil, err
	}
	d.api.Swarm = cfg.Swarm
	d.api.Log = d.log.With("part", "api")
	d.mirror = &mirror{st: d.st, tl: d.tl, log: d.log, forget: d.args.forget}

	if cfg.Site != nil {
		// vCenter is reached from the caller's original network namespace
		// even when New runs inside the boot network's (netns.NS.Do locks
		// only this goroutine's thread): the simulator listens and govmomi
		// dials from other goroutines, so both must be on the same side.
		type opened struct {
			vc  *vcenter
			err error
		}
		ch := make(chan opened, 1)
		go func() {
			vc, err := openVCenter(context.Background(), cfg.Site, cfg.Simulate, d.st, d.log)
			ch <- opened{vc, err}
		}()
		o := <-ch
		if o.err != nil {
			return nil, o.err
		}
		d.vc = o.vc
		d.closers = append(d.closers, d.vc.close)
		d.api.Guestinfo = d.vc
	}
	return d, nil
}

// apiHost is the host agents reach the agent API at: APIURL's, else the
// boot server's IP.
func apiHost(cfg Config, serverIP net.IP) (string, error) {
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" {
			return "", fmt.Errorf("daemon: agent API URL %q: want https://HOST:PORT", cfg.APIURL)
		}
		return u.Hostname(), nil
	}
	if serverIP == nil {
		return "", errors.New("daemon: no boot server IP to build the agent API URL from: set APIURL")
	}
	return serverIP.String(), nil
}

// Listen opens every socket: call it from inside a network namespace to
// serve there (the admin socket is a file: namespaces do not matter to
// it). Run calls it when it was not called.
func (d *Daemon) Listen() error {
	if d.adminLn == nil {
		l, err := admin.Listen(admin.SocketPath(d.cfg.DataDir))
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.adminLn = l
	}
	if d.apiLn == nil {
		if d.cfg.APIListener != nil {
			d.apiLn = d.cfg.APIListener
		} else {
			l, err := net.Listen("tcp", d.cfg.APIAddr)
			if err != nil {
				return fmt.Errorf("daemon: agent API listen %s: %w (choose another --api-addr)", d.cfg.APIAddr, err)
			}
			d.apiLn = l
		}
		d.apiURL = d.cfg.APIURL
		if d.apiURL == "" {
			port := strconv.Itoa(DefaultAPIPort)
			if a, ok := d.apiLn.Addr().(*net.TCPAddr); ok {
				port = strconv.Itoa(a.Port)
			}
			d.apiURL = "https://" + net.JoinHostPort(d.boot.ServerIP().String(), port)
		}
		if d.cfg.TrustInitrd {
			if err := d.writeTrustInitrd(); err != nil {
				return err
			}
		}
	}
	return d.boot.Listen()
}

// Run applies the site (when one is configured), then serves boots, the
// agent API and the event mirror until ctx ends or one of them fails. It
// returns nil on a clean shutdown.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.Listen(); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	d.startRotations(ctx)
	g.Go(func() error { return d.boot.Run(ctx) })
	g.Go(func() error { return d.api.Serve(ctx, d.apiLn) })
	g.Go(func() error { d.mirror.run(ctx, d.cfg.MirrorEvery); return nil })
	adm := &admin.Server{Ops: &admin.Ops{Store: d.st, Revoker: d.api, KernelLine: d.kernelLineToken, Rotator: d, Destroyer: d},
		Log: d.log.With("part", "admin")}
	g.Go(func() error { return adm.Serve(ctx, d.adminLn) })
	if d.vc != nil {
		// A failed apply is logged and kept (ApplyErr); boots of the VMs
		// already recorded go on.
		g.Go(func() error { d.vc.apply(ctx); return nil })
	}
	d.log.Info("appliance running", "http", d.boot.HTTPBase(), "api", d.apiURL, "api_listen", d.apiLn.Addr().String(),
		"admin", d.AdminSocket())
	err := g.Wait()
	d.rot.wg.Wait() // a roll records where it stopped
	d.mirror.once() // what happened during shutdown
	return err
}

// Close stops the simulator and vCenter session and closes the store. Call
// it after Run returned.
func (d *Daemon) Close() error {
	if d.apiLn != nil {
		_ = d.apiLn.Close() // Run closed it already, unless it never ran
	}
	if d.adminLn != nil {
		_ = d.adminLn.Close() // likewise; removes the socket file
	}
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
	return nil
}

// Store is the appliance's state store.
func (d *Daemon) Store() *store.Store { return d.st }

// Timeline is the in-memory boot timeline (also served at
// /api/machines on the HTTP address).
func (d *Daemon) Timeline() *timeline.Log { return d.tl }

// Boot is the boot server (addresses, metrics registry).
func (d *Daemon) Boot() *bootserve.Server { return d.boot }

// AdminSocket is the admin API's unix socket (appliance/admin), served
// while Run runs.
func (d *Daemon) AdminSocket() string { return admin.SocketPath(d.cfg.DataDir) }

// API is the agent API server (e.g. to Revoke a node).
func (d *Daemon) API() *enroll.Server { return d.api }

// Swarm is the swarm as the appliance knows it now, with its node list
// (Info.Nodes) and who answered (Info.From): the configured existing
// swarm's manager, else what the managed managers' agents last pushed
// (swarm.ErrNoSwarm before the first push). The Info holds the join
// tokens: print its Nodes or the Info itself (String/LogValue redact),
// never its token fields.
func (d *Daemon) Swarm(ctx context.Context) (swarm.Info, error) { return d.api.CurrentSwarm(ctx) }

// HTTPBase is the URL machines fetch scripts and artifacts from.
func (d *Daemon) HTTPBase() string { return d.boot.HTTPBase() }

// APIURL is the agent API's URL as agents reach it (after Listen).
func (d *Daemon) APIURL() string { return d.apiURL }

// APIAddr is the agent API listener's address (after Listen).
func (d *Daemon) APIAddr() net.Addr {
	if d.apiLn == nil {
		return nil
	}
	return d.apiLn.Addr()
}

// CAPEM is the appliance CA's certificate (what agents pin).
func (d *Daemon) CAPEM() []byte { return d.api.CA.CertPEM }

// Fleet is the vCenter fleet (nil without a site), for Plan/Apply/Destroy.
func (d *Daemon) Fleet() *fleet.Fleet {
	if d.vc == nil {
		return nil
	}
	return d.vc.fleet
}

// Sim is the in-process vCenter simulator (nil unless Simulate).
func (d *Daemon) Sim() *vsphere.Sim {
	if d.vc == nil {
		return nil
	}
	return d.vc.sim
}

// Applied is closed when the site's apply at start has finished (at once
// without a site); ApplyErr then says how it went.
func (d *Daemon) Applied() <-chan struct{} {
	if d.vc == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return d.vc.done
}

// ApplyErr is the error of the site's apply at start (nil before Applied
// is closed, or when it succeeded).
func (d *Daemon) ApplyErr() error {
	if d.vc == nil {
		return nil
	}
	return d.vc.err()
}

// Package vsphere is swarmboot's vCenter side, on govmomi: connecting
// (TLS verified, a pinned thumbprint, or an explicit, loudly logged
// insecure mode), resolving the site's placement (datacenter, datastore,
// resource pool, network, nested folders), pushing ISOs to a datastore
// content-addressed, and creating, listing, powering, reconfiguring and
// destroying the VMs swarmboot owns (marked in extraConfig). vCenter faults
// become one clear line naming the object and what to do (see Explain).
package vsphere

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"

	"github.com/swarmboot/swarmboot/appliance/site"
)

// Client is a logged-in vCenter session.
type Client struct {
	VC  *vim25.Client
	Log *slog.Logger

	url    string
	logout func(context.Context) error
}

// New wraps an already logged-in vim25 client (tests, the simulator).
func New(vc *vim25.Client, log *slog.Logger) *Client {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Client{VC: vc, Log: log, url: vc.URL().Host}
}

// Connect logs in to the vCenter named in v. TLS is verified against the
// system roots (plus v.CA), or the pinned v.Thumbprint; v.Insecure skips
// verification and says so loudly in the log. Every failure is one line
// that says what to change.
func Connect(ctx context.Context, v site.VCenter, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if v.URL == "" {
		return nil, fmt.Errorf("vcenter: no URL: set vcenter.url in the site file or $GOVC_URL")
	}
	u, err := soap.ParseURL(v.URL)
	if err != nil || u == nil {
		return nil, fmt.Errorf("vcenter url %q: want https://HOST/sdk", v.URL)
	}
	u.User = nil
	if v.User == "" || v.Password == "" {
		return nil, fmt.Errorf("vcenter %s: no user or password: set vcenter.user and $%s (or $GOVC_USERNAME/$GOVC_PASSWORD)", u.Host, site.EnvPassword)
	}
	if v.Insecure {
		log.Warn("INSECURE: TLS certificate of vCenter is NOT verified (insecure: true in the site file); anyone on the path can read the vCenter password. Pin vcenter.thumbprint instead.", "vcenter", u.Host)
	}
	sc := soap.NewClient(u, v.Insecure)
	// Keep a connection per concurrent VM operation: the default of 2 idle
	// connections per host makes parallel applies re-handshake TLS.
	sc.DefaultTransport().MaxIdleConnsPerHost = 32
	sc.Client.Transport = drainingTransport{sc.Client.Transport}
	if v.Thumbprint != "" {
		sc.SetThumbprint(u.Host, strings.ToUpper(v.Thumbprint))
	}
	if v.CA != "" {
		if err := sc.SetRootCAs(v.CA); err != nil {
			return nil, fmt.Errorf("vcenter.ca %s: %v: give a PEM file of CA certificates", v.CA, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	vc, err := vim25.NewClient(cctx, sc)
	if err != nil {
		return nil, Explain(err, "connect to", "vCenter "+u.Host)
	}
	m := session.NewManager(vc)
	if err := m.Login(cctx, url.UserPassword(v.User, v.Password)); err != nil {
		return nil, Explain(err, "log in to", fmt.Sprintf("vCenter %s as %s", u.Host, v.User))
	}
	log.Debug("logged in", "vcenter", u.Host, "user", v.User)
	return &Client{VC: vc, Log: log, url: u.Host, logout: m.Logout}, nil
}

// Close ends the session (a no-op for clients made with New).
func (c *Client) Close(ctx context.Context) error {
	if c.logout == nil {
		return nil
	}
	return c.logout(ctx)
}

// finder returns a finder scoped to nothing (datacenter set by callers).
func (c *Client) finder() *find.Finder { return find.NewFinder(c.VC, false) }

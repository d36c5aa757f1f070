package vsphere

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"

	"github.com/vmware/govmomi/simulator"

	"github.com/swarmboot/swarmboot/appliance/site"
)

var simMu sync.Mutex

// Sim is an in-process vCenter: govmomi's simulator with the VPX model
// (datacenter DC0, cluster DC0_C0 with 3 hosts, datastore LocalDS_0,
// network "VM Network"), on a loopback HTTPS port with a random password.
// It is what `--simulate` and the tests run against.
type Sim struct {
	Model   *simulator.Model
	Server  *simulator.Server
	VCenter site.VCenter // URL, user, password and pinned thumbprint
}

// StartSim starts a simulator. Close it when done.
func StartSim() (*Sim, error) {
	// The simulator keeps package-level state while building a model.
	simMu.Lock()
	defer simMu.Unlock()
	m := simulator.VPX()
	m.Machine = 0 // no stock VMs: only ours
	m.Autostart = false
	if err := m.Create(); err != nil {
		return nil, fmt.Errorf("start vCenter simulator: %w", err)
	}
	pw := make([]byte, 12)
	rand.Read(pw)
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword("swarmboot@vsphere.local", hex.EncodeToString(pw))}
	srv := m.Service.NewServer()
	u := *srv.URL
	u.User = nil
	pass, _ := srv.URL.User.Password()
	return &Sim{Model: m, Server: srv, VCenter: site.VCenter{
		URL:        u.String(),
		User:       srv.URL.User.Username(),
		Password:   pass,
		Thumbprint: srv.CertificateInfo().ThumbprintSHA1,
	}}, nil
}

// Site returns a site placed on the simulator's inventory, with no groups.
func (s *Sim) Site() *site.Site {
	return &site.Site{
		VCenter:      s.VCenter,
		Datacenter:   "DC0",
		Datastore:    "LocalDS_0",
		ResourcePool: "DC0_C0/Resources",
		Network:      "VM Network",
		Folder:       "TERRAFORM/Linux/linuxkit-dev",
	}
}

// AddFault injects a fault into the simulator (see simulator.FaultInjectionRule).
func (s *Sim) AddFault(r *simulator.FaultInjectionRule) { s.Model.Service.AddFaultRule(r) }

// ClearFaults removes injected faults.
func (s *Sim) ClearFaults() { s.Model.Service.ClearFaultRules() }

// Close stops the server and removes the simulator's files.
func (s *Sim) Close() {
	s.Server.Close()
	s.Model.Remove()
}

package vsphere

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

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
	VCenter site.VCenter // URL, user, password, CA file and thumbprint
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
	ca, err := srv.CertificateFile() // removed by srv.Close
	if err != nil {
		srv.Close()
		m.Remove()
		return nil, fmt.Errorf("start vCenter simulator: %w", err)
	}
	return &Sim{Model: m, Server: srv, VCenter: site.VCenter{
		URL:        u.String(),
		User:       srv.URL.User.Username(),
		Password:   pass,
		Thumbprint: srv.CertificateInfo().ThumbprintSHA1,
		CA:         ca,
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

// StartGuests plays VMware Tools for the simulator: every powered-on VM
// without an address gets one from 192.0.2.0/24 (TEST-NET-1; only a
// property in the simulator, no traffic). It stops when ctx is done.
func (s *Sim) StartGuests(ctx context.Context, c *Client) {
	go func() {
		next := 10
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			root := object.NewRootFolder(c.VC)
			vms, err := c.List(ctx, root)
			if err != nil {
				continue
			}
			for i := range vms {
				vm := &vms[i]
				if vm.PowerState != "poweredOn" || vm.IP != "" {
					continue
				}
				ip := fmt.Sprintf("192.0.2.%d", next%250+2)
				next++
				task, err := c.Object(vm).Reconfigure(ctx, types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{
					&types.OptionValue{Key: "SET.guest.ipAddress", Value: ip}}})
				if err == nil {
					_ = task.Wait(ctx)
				}
			}
		}
	}()
}

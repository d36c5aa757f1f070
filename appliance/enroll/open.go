package enroll

import (
	"path/filepath"

	"github.com/swarmboot/swarmboot/appliance/ca"
	"github.com/swarmboot/swarmboot/appliance/store"
)

// CADir is where the appliance's CA lives under its data dir; the image
// builder bakes CADir/ca.pem into images (api.TrustFiles).
func CADir(dataDir string) string { return filepath.Join(dataDir, "ca") }

// New opens (creating on first start) the CA under dataDir and returns the
// agent API for st, with a server certificate for hosts (the names and IPs
// the images' appliance URL uses). Set the optional fields (Swarm,
// Guestinfo, Log) before serving.
func New(dataDir string, st *store.Store, hosts ...string) (*Server, error) {
	authority, err := ca.Open(CADir(dataDir))
	if err != nil {
		return nil, err
	}
	return &Server{Store: st, CA: authority, Hosts: hosts}, nil
}

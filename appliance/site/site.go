// Package site reads the site file (swarmboot.yml): how to reach vCenter,
// where VMs are placed (datacenter, datastore, resource pool, network,
// folder) and which groups of VMs should exist. Decoding is strict: an
// unknown key or a bad value is an error naming FILE:LINE.
//
//	vcenter:
//	  url: https://vcenter.example.com/sdk
//	  user: swarmboot@vsphere.local      # password from $SWARMBOOT_VSPHERE_PASSWORD
//	  thumbprint: "3F:...:9A"            # or ca: /etc/swarmboot/vcenter-ca.pem
//	datacenter: DC1
//	datastore: ssd-01
//	resource_pool: /DC1/host/Cluster1/Resources
//	network: VM Network
//	folder: TERRAFORM/Linux/linuxkit-dev
//	groups:
//	  - name: workers
//	    pattern: tf-sw-{n}
//	    count: 3
//	    cpus: 2
//	    memory: 4096        # MiB
//	    disk: 10            # GiB, thin
//	    guest_id: other5xLinux64Guest
//	    firmware: bios      # bios | efi
//	    boot: iso           # iso | pxe
//	    role: worker        # manager | worker
//	    image: worker       # a build name (artifacts/worker.iso), an ISO file, or "[ds] path.iso"
//	artifacts: out          # where `swarmboot build -o` writes (default out/)
package site

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Environment variables read by Load (besides the GOVC_* ones govc users
// already have).
const (
	EnvPassword = "SWARMBOOT_VSPHERE_PASSWORD"
)

// Site is a parsed site file.
type Site struct {
	Path         string // the file it came from
	VCenter      VCenter
	Datacenter   string
	Datastore    string
	ResourcePool string
	Network      string
	Folder       string // slash-separated, relative to the datacenter's vm folder
	Artifacts    string // where `swarmboot build -o` wrote images (default "out", relative to the site file)
	Groups       []Group
}

// VCenter is how to reach and trust vCenter.
type VCenter struct {
	URL        string // https://host/sdk
	User       string
	Password   string `json:"-"`
	Insecure   bool   // skip TLS verification (labs only; logged loudly)
	Thumbprint string // pinned SHA-1 (or SHA-256) certificate thumbprint
	CA         string // PEM file of CAs to trust
}

// Redacted is the URL with the user but without any password, for logs.
func (v VCenter) Redacted() string {
	u, err := url.Parse(v.URL)
	if err != nil {
		return "<bad url>"
	}
	u.User = nil
	return u.String()
}

// Group is a set of identical VMs named by a pattern.
type Group struct {
	Name      string
	Pattern   string // contains {n}, 1-based
	Count     int
	CPUs      int
	MemoryMiB int
	DiskGiB   int
	GuestID   string
	Firmware  string // bios | efi
	Boot      string // iso | pxe
	Role      string // manager | worker
	Image     string // ISO path (relative to the site file), "[datastore] path", or a build name
	Line      int    // where the group starts in the site file
}

// VMName is the name of the n-th (1-based) VM of the group.
func (g *Group) VMName(n int) string {
	return strings.ReplaceAll(g.Pattern, "{n}", strconv.Itoa(n))
}

// Index returns n when name is the n-th VM of the group.
func (g *Group) Index(name string) (int, bool) {
	i := strings.Index(g.Pattern, "{n}")
	if i < 0 {
		return 0, false
	}
	pre, post := g.Pattern[:i], g.Pattern[i+3:]
	if !strings.HasPrefix(name, pre) || !strings.HasSuffix(name, post) || len(name) <= len(pre)+len(post) {
		return 0, false
	}
	n, err := strconv.Atoi(name[len(pre) : len(name)-len(post)])
	if err != nil || n < 1 || g.VMName(n) != name {
		return 0, false
	}
	return n, true
}

// Group returns the group named name.
func (s *Site) Group(name string) *Group {
	for i := range s.Groups {
		if s.Groups[i].Name == name {
			return &s.Groups[i]
		}
	}
	return nil
}

// ImagePath resolves a group's image to a local ISO file path, or returns
// onDatastore=true when the image is already a datastore path
// ("[ds] dir/file.iso"). A bare build name (no slash, no .iso suffix) is
// the ISO that `swarmboot build --name NAME` wrote into the artifacts
// directory; other relative paths are relative to the site file.
func (s *Site) ImagePath(g *Group) (path string, onDatastore bool) {
	if strings.HasPrefix(g.Image, "[") {
		return g.Image, true
	}
	img := g.Image
	if IsBuildName(img) {
		dir := s.Artifacts
		if dir == "" {
			dir = "out"
		}
		img = filepath.Join(dir, img+".iso")
	}
	if filepath.IsAbs(img) || s.Path == "" {
		return img, false
	}
	return filepath.Join(filepath.Dir(s.Path), img), false
}

// IsBuildName reports whether a group's image names a build (as
// `swarmboot build --name` gives it) rather than a file or datastore path.
func IsBuildName(image string) bool {
	return image != "" && !strings.ContainsAny(image, `/\[`) && !strings.HasSuffix(strings.ToLower(image), ".iso")
}

// Load reads and validates the site file at path, taking secrets from the
// environment (SWARMBOOT_VSPHERE_PASSWORD, GOVC_URL, GOVC_USERNAME,
// GOVC_PASSWORD, GOVC_INSECURE) where the file leaves them out.
func Load(path string) (*Site, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("site file: %w (write one: see docs/vsphere.md, or try `swarmboot apply --simulate`)", err)
	}
	return Parse(path, data, os.Getenv)
}

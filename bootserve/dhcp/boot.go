package dhcp

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Boot says which file each kind of client boots. Zero values are the
// defaults.
type Boot struct {
	// TFTPServer is the next-server (siaddr) for TFTP loaders (nil → ServerIP).
	TFTPServer net.IP
	// HTTPBase is the base URL of the HTTP boot server, e.g.
	// "http://10.77.0.1:8080". Required: iPXE and UEFI HTTP boot use it.
	HTTPBase string
	BIOSFile string // TFTP name for BIOS PXE ("" → undionly.kpxe)
	EFIFile  string // TFTP name for UEFI x64 PXE ("" → ipxe.efi; snponly.efi also works)
	// HTTPBootPath is the path under HTTPBase of the EFI loader that UEFI
	// HTTP boot clients fetch ("" → "/" + EFIFile).
	HTTPBootPath string
	// ScriptURL is the iPXE script URL for clients that already run iPXE;
	// "{mac}" is replaced by the client's MAC in colon form ("" →
	// HTTPBase + "/boot/{mac}.ipxe").
	ScriptURL string
	// Overrides gives per-machine choices (nil → none). A Table is one.
	Overrides Overrides
}

// Overrides answers per-machine boot choices. Implementations must be safe
// for concurrent use.
type Overrides interface {
	Override(mac net.HardwareAddr) (Override, bool)
}

// Override changes what one machine boots.
type Override struct {
	File   string // first-stage loader (TFTP name or http:// URL) instead of the arch default
	Script string // iPXE script URL instead of ScriptURL
	Ignore bool   // never answer this machine (it boots elsewhere)
}

// Table is a fixed map of overrides keyed by MAC in lowercase colon form
// ("52:54:00:12:34:56"); use NewTable to accept any MAC spelling.
type Table map[string]Override

// NewTable builds a Table, normalizing the MAC keys.
func NewTable(m map[string]Override) (Table, error) {
	t := make(Table, len(m))
	for k, v := range m {
		mac, err := net.ParseMAC(k)
		if err != nil {
			return nil, fmt.Errorf("%w: override for %q: %w", ErrConfig, k, err)
		}
		t[mac.String()] = v
	}
	return t, nil
}

// Override implements Overrides.
func (t Table) Override(mac net.HardwareAddr) (Override, bool) {
	o, ok := t[mac.String()]
	return o, ok
}

func (b Boot) check(server net.IP) (Boot, error) {
	if b.TFTPServer == nil {
		b.TFTPServer = server
	}
	if b.TFTPServer.To4() == nil {
		return b, fmt.Errorf("%w: TFTP server %s is not IPv4", ErrConfig, b.TFTPServer)
	}
	b.TFTPServer = b.TFTPServer.To4()
	u, err := url.Parse(b.HTTPBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return b, fmt.Errorf("%w: HTTP base %q: want a URL like http://%s:8080", ErrConfig, b.HTTPBase, server)
	}
	b.HTTPBase = strings.TrimRight(b.HTTPBase, "/")
	if b.BIOSFile == "" {
		b.BIOSFile = "undionly.kpxe"
	}
	if b.EFIFile == "" {
		b.EFIFile = "ipxe.efi"
	}
	if b.HTTPBootPath == "" {
		b.HTTPBootPath = "/" + b.EFIFile
	}
	if !strings.HasPrefix(b.HTTPBootPath, "/") {
		b.HTTPBootPath = "/" + b.HTTPBootPath
	}
	if b.ScriptURL == "" {
		b.ScriptURL = b.HTTPBase + "/boot/{mac}.ipxe"
	}
	return b, nil
}

// Client is what a request tells about the machine that sent it.
type Client struct {
	MAC  net.HardwareAddr
	PXE  bool      // vendor class PXEClient or HTTPClient: a firmware or iPXE netboot
	HTTP bool      // UEFI HTTP boot (vendor class HTTPClient or an HTTP arch)
	IPXE bool      // already iPXE (user class "iPXE" or option 175)
	Arch iana.Arch // option 93, else from the vendor class, else 0
	// ArchName names the architecture for logs, events and metrics:
	// bios, efi-x64, efi-x64-http, efi-ia32, efi-arm64, … or "none".
	ArchName string
}

// Classify reads the boot-relevant options of a request.
func Classify(m *dhcpv4.DHCPv4) Client {
	c := Client{MAC: m.ClientHWAddr, ArchName: "none"}
	vc := m.ClassIdentifier()
	c.PXE = strings.HasPrefix(vc, "PXEClient") || strings.HasPrefix(vc, "HTTPClient")
	c.HTTP = strings.HasPrefix(vc, "HTTPClient")
	c.IPXE = bytes.Contains(m.Options.Get(dhcpv4.OptionUserClassInformation), []byte("iPXE")) ||
		m.Options.Has(dhcpv4.GenericOptionCode(175))
	known := false
	if archs := m.ClientArch(); len(archs) > 0 {
		c.Arch, known = archs[0], true
	} else if i := strings.Index(vc, ":Arch:"); i >= 0 && len(vc) >= i+11 {
		if n, err := strconv.ParseUint(vc[i+6:i+11], 10, 16); err == nil {
			c.Arch, known = iana.Arch(n), true
		}
	} else if c.PXE {
		known = true // a PXE ROM without option 93 is a BIOS one
	}
	switch c.Arch {
	case iana.EFI_X86_HTTP, iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP, iana.EFI_ARM32_HTTP,
		iana.EFI_ARM64_HTTP, iana.INTEL_X86PC_HTTP:
		c.HTTP = true
	}
	if known {
		c.ArchName = archName(c.Arch)
	}
	return c
}

func archName(a iana.Arch) string {
	switch a {
	case iana.INTEL_X86PC:
		return "bios"
	case iana.EFI_IA32:
		return "efi-ia32"
	case iana.EFI_X86_64, iana.EFI_BC:
		return "efi-x64"
	case iana.EFI_ARM32:
		return "efi-arm32"
	case iana.EFI_ARM64:
		return "efi-arm64"
	case iana.EFI_X86_64_HTTP, iana.EFI_BC_HTTP:
		return "efi-x64-http"
	case iana.EFI_X86_HTTP:
		return "efi-ia32-http"
	case iana.EFI_ARM64_HTTP:
		return "efi-arm64-http"
	}
	return "arch-" + strconv.Itoa(int(a))
}

// Choice is the answer to "what does this client boot?".
type Choice struct {
	File string // boot file name (TFTP) or URL (HTTP)
	HTTP bool   // File is an http(s) URL for UEFI HTTP boot: reply with vendor class HTTPClient
	// Why explains an empty File (unsupported arch, ignored machine).
	Why string
}

// Choose picks the boot file for c. File is empty when c should not be
// booted (not PXE, unsupported architecture, ignored by an override).
func (b Boot) Choose(c Client) Choice {
	if !c.PXE && !c.IPXE {
		return Choice{Why: "not a PXE client"}
	}
	var o Override
	if b.Overrides != nil {
		if v, ok := b.Overrides.Override(c.MAC); ok {
			o = v
		}
	}
	if o.Ignore {
		return Choice{Why: "ignored by a per-machine override"}
	}
	if c.IPXE {
		s := o.Script
		if s == "" {
			s = b.ScriptURL
		}
		return Choice{File: strings.ReplaceAll(s, "{mac}", c.MAC.String())}
	}
	if o.File != "" {
		return Choice{File: o.File, HTTP: c.HTTP && isHTTP(o.File)}
	}
	switch c.ArchName {
	case "bios":
		return Choice{File: b.BIOSFile}
	case "efi-x64":
		return Choice{File: b.EFIFile}
	case "efi-x64-http":
		return Choice{File: b.HTTPBase + b.HTTPBootPath, HTTP: true}
	}
	return Choice{Why: "no boot loader for architecture " + c.ArchName}
}

func isHTTP(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

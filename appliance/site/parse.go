package site

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits that keep a typo from asking vCenter for something absurd.
const (
	MaxCount  = 1000
	MaxCPUs   = 768
	MaxMemory = 24 * 1024 * 1024 // MiB
	MaxDisk   = 62 * 1024        // GiB
)

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	vmNamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*)?\{n\}([A-Za-z0-9._-]*)$`)
	guestPattern  = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	thumbPattern  = regexp.MustCompile(`^([0-9A-Fa-f]{2}:){19}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$`)
)

// parser carries the file name for error messages.
type parser struct {
	file string
	errs []string
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, fmt.Sprintf("%s:%d: %s", p.file, line, fmt.Sprintf(format, args...)))
}

// fields walks a mapping node, calling the handler of each known key and
// reporting unknown or duplicate keys.
func (p *parser) fields(n *yaml.Node, what string, handlers map[string]func(*yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping of keys to values", what)
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		h, ok := handlers[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.errorf(k, "%s: keys must be plain words", what)
		case !ok:
			p.errorf(k, "%s: unknown key %q (known: %s)", what, k.Value, known(handlers))
		case seen[k.Value]:
			p.errorf(k, "%s: key %q given twice", what, k.Value)
		default:
			seen[k.Value] = true
			h(v)
		}
	}
}

func known(h map[string]func(*yaml.Node)) string {
	ks := make([]string, 0, len(h))
	for k := range h {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func (p *parser) str(dst *string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float") {
			p.errorf(n, "want a string, got %s", describe(n))
			return
		}
		*dst = n.Value
	}
}

func (p *parser) boolean(dst *bool) func(*yaml.Node) {
	return func(n *yaml.Node) {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			p.errorf(n, "want true or false, got %s", describe(n))
			return
		}
		*dst = n.Value == "true" || n.Value == "True" || n.Value == "TRUE"
	}
}

// size parses an integer in unit (MiB or GiB), or a string with a suffix.
func (p *parser) size(dst *int, unit string, max int) func(*yaml.Node) {
	return func(n *yaml.Node) {
		v, err := parseSize(n, unit)
		if err == nil && (v < 1 || v > max) {
			err = fmt.Errorf("must be between 1 and %d %s", max, unit)
		}
		if err != nil {
			p.errorf(n, "%v", err)
			return
		}
		*dst = v
	}
}

func parseSize(n *yaml.Node, unit string) (int, error) {
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("want a size like 4096 or \"4GiB\", got %s", describe(n))
	}
	s := strings.TrimSpace(n.Value)
	mult := map[string]float64{"MiB": 1, "MB": 1, "M": 1, "GiB": 1024, "GB": 1024, "G": 1024, "TiB": 1024 * 1024, "TB": 1024 * 1024, "T": 1024 * 1024}
	mib := 1.0
	if unit == "GiB" {
		mib = 1024
	}
	factor := mib
	for suf, m := range mult {
		if strings.HasSuffix(s, suf) && len(s) > len(suf) {
			if _, err := strconv.ParseFloat(s[:len(s)-len(suf)], 64); err == nil {
				factor = m
				s = strings.TrimSpace(s[:len(s)-len(suf)])
				break
			}
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1e12 {
		return 0, fmt.Errorf("want a size like 4096 or \"4GiB\" (plain numbers are %s), got %q", unit, n.Value)
	}
	v := f * factor / mib
	if v != float64(int(v)) {
		return 0, fmt.Errorf("%q is not a whole number of %s", n.Value, unit)
	}
	return int(v), nil
}

func (p *parser) integer(dst *int, min, max int) func(*yaml.Node) {
	return func(n *yaml.Node) {
		v, err := strconv.Atoi(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			p.errorf(n, "want a whole number, got %s", describe(n))
			return
		}
		if v < min || v > max {
			p.errorf(n, "%d is out of range %d..%d", v, min, max)
			return
		}
		*dst = v
	}
}

func (p *parser) oneOf(dst *string, choices ...string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		for _, c := range choices {
			if n.Kind == yaml.ScalarNode && n.Value == c {
				*dst = c
				return
			}
		}
		p.errorf(n, "want one of %s, got %s", strings.Join(choices, ", "), describe(n))
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	return strconv.Quote(v)
}

// Parse decodes a site file's bytes; file names the source in errors and
// getenv supplies the environment (os.Getenv in Load).
func Parse(file string, data []byte, getenv func(string) string) (*Site, error) {
	p := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s:1: empty site file (see docs/vsphere.md for an example)", file)
	}
	s := &Site{Path: file}
	var groups *yaml.Node
	p.fields(doc.Content[0], "site", map[string]func(*yaml.Node){
		"vcenter":       func(n *yaml.Node) { p.vcenter(n, &s.VCenter) },
		"datacenter":    p.str(&s.Datacenter),
		"datastore":     p.str(&s.Datastore),
		"resource_pool": p.str(&s.ResourcePool),
		"network":       p.str(&s.Network),
		"folder":        p.str(&s.Folder),
		"artifacts":     p.str(&s.Artifacts),
		"groups":        func(n *yaml.Node) { groups = n },
	})
	if groups != nil {
		p.groups(groups, s)
	}
	if len(p.errs) == 0 {
		p.check(s, doc.Content[0])
	}
	if len(p.errs) > 0 {
		return nil, errors.New(strings.Join(p.errs, "\n"))
	}
	env(s, getenv)
	return s, nil
}

func (p *parser) vcenter(n *yaml.Node, v *VCenter) {
	p.fields(n, "vcenter", map[string]func(*yaml.Node){
		"url":        p.str(&v.URL),
		"user":       p.str(&v.User),
		"password":   p.str(&v.Password),
		"insecure":   p.boolean(&v.Insecure),
		"thumbprint": p.str(&v.Thumbprint),
		"ca":         p.str(&v.CA),
	})
	if v.URL != "" {
		if u, err := url.Parse(v.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p.errorf(n, "vcenter.url %q: want https://HOST/sdk", v.URL)
		} else if u.User != nil {
			p.errorf(n, "vcenter.url: put the user in vcenter.user and the password in $%s, not in the URL", EnvPassword)
		}
	}
	if v.Thumbprint != "" && !thumbPattern.MatchString(v.Thumbprint) {
		p.errorf(n, "vcenter.thumbprint %q: want the SHA-1 or SHA-256 fingerprint as hex pairs with colons (govc about.cert -thumbprint)", v.Thumbprint)
	}
}

func (p *parser) groups(n *yaml.Node, s *Site) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "groups must be a list, got %s", describe(n))
		return
	}
	for _, gn := range n.Content {
		g := Group{Line: gn.Line, CPUs: 2, MemoryMiB: 2048, DiskGiB: 10, GuestID: "otherLinux64Guest",
			Firmware: "bios", Boot: "iso", Role: "worker", Count: -1}
		p.fields(gn, "group", map[string]func(*yaml.Node){
			"name":     p.str(&g.Name),
			"pattern":  p.str(&g.Pattern),
			"count":    p.integer(&g.Count, 0, MaxCount),
			"cpus":     p.integer(&g.CPUs, 1, MaxCPUs),
			"memory":   p.size(&g.MemoryMiB, "MiB", MaxMemory),
			"disk":     p.size(&g.DiskGiB, "GiB", MaxDisk),
			"guest_id": p.str(&g.GuestID),
			"firmware": p.oneOf(&g.Firmware, "bios", "efi"),
			"boot":     p.oneOf(&g.Boot, "iso", "pxe"),
			"role":     p.oneOf(&g.Role, "manager", "worker"),
			"image":    p.str(&g.Image),
		})
		s.Groups = append(s.Groups, g)
	}
}

// check validates what single fields cannot: required keys, uniqueness.
func (p *parser) check(s *Site, root *yaml.Node) {
	for what, v := range map[string]string{"datacenter": s.Datacenter, "datastore": s.Datastore, "network": s.Network} {
		if v == "" {
			p.errorf(root, "%s is missing", what)
		}
	}
	if strings.Contains(s.Folder, "..") || strings.HasPrefix(s.Folder, "/") {
		p.errorf(root, "folder %q: want a path below the datacenter's VM folder, like TERRAFORM/Linux/linuxkit-dev", s.Folder)
	}
	names := map[string]string{}
	groups := map[string]bool{}
	for i := range s.Groups {
		g := &s.Groups[i]
		line := &yaml.Node{Line: g.Line}
		switch {
		case !namePattern.MatchString(g.Name):
			p.errorf(line, "group name %q: want lowercase letters, digits and dashes", g.Name)
		case groups[g.Name]:
			p.errorf(line, "group %q is defined twice", g.Name)
		}
		groups[g.Name] = true
		if g.Pattern == "" {
			g.Pattern = g.Name + "-{n}"
		}
		if !vmNamePattern.MatchString(g.Pattern) || strings.Count(g.Pattern, "{n}") != 1 || len(g.Pattern) > 70 {
			p.errorf(line, "group %s: pattern %q must contain {n} once, with letters, digits, '.', '_' or '-' around it (like tf-sw-{n})", g.Name, g.Pattern)
			continue
		}
		if g.Count < 0 {
			p.errorf(line, "group %s: count is missing", g.Name)
		}
		if !guestPattern.MatchString(g.GuestID) {
			p.errorf(line, "group %s: guest_id %q is not a vSphere guest id (like otherLinux64Guest)", g.Name, g.GuestID)
		}
		if g.Boot == "iso" && g.Image == "" {
			p.errorf(line, "group %s: boot: iso needs image: (an ISO file or \"[datastore] path.iso\")", g.Name)
		}
		for n := 1; n <= g.Count; n++ {
			vm := g.VMName(n)
			if other, dup := names[vm]; dup {
				p.errorf(line, "group %s: VM name %s is also made by group %s; give the groups different patterns", g.Name, vm, other)
				break
			}
			names[vm] = g.Name
		}
	}
}

// env fills what the file left out from the environment.
func env(s *Site, getenv func(string) string) {
	v := &s.VCenter
	if v.URL == "" {
		if raw := getenv("GOVC_URL"); raw != "" {
			if !strings.Contains(raw, "://") {
				raw = "https://" + raw
			}
			if u, err := url.Parse(raw); err == nil {
				if u.User != nil {
					if v.User == "" {
						v.User = u.User.Username()
					}
					if pw, ok := u.User.Password(); ok && v.Password == "" {
						v.Password = pw
					}
					u.User = nil
				}
				if u.Path == "" || u.Path == "/" {
					u.Path = "/sdk"
				}
				v.URL = u.String()
			}
		}
	}
	if v.User == "" {
		v.User = getenv("GOVC_USERNAME")
	}
	if v.Password == "" {
		v.Password = getenv(EnvPassword)
	}
	if v.Password == "" {
		v.Password = getenv("GOVC_PASSWORD")
	}
	if !v.Insecure {
		switch strings.ToLower(getenv("GOVC_INSECURE")) {
		case "1", "true", "yes":
			v.Insecure = true
		}
	}
}

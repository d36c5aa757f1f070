package yml

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize is the largest yml file Load reads.
const MaxFileSize = 4 << 20

// Loader reads and merges yml files. The zero value is ready to use.
type Loader struct {
	// Logger receives warnings (ignored sections); nil discards.
	Logger *slog.Logger
}

// Load reads, validates and merges the files in order, the way
// `linuxkit build a.yml b.yml` does. Errors name FILE:LINE.
func Load(paths ...string) (*Config, error) { return (&Loader{}).Load(paths...) }

// Load reads, validates and merges the files in order.
func (l *Loader) Load(paths ...string) (*Config, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("load yml: no file given (e.g. -f linuxkit/worker.yml)")
	}
	var merged *Config
	for _, p := range paths {
		data, err := readLimited(p)
		if err != nil {
			return nil, err
		}
		c, err := Parse(p, data)
		if err != nil {
			return nil, err
		}
		if merged == nil {
			merged = c
		} else if merged, err = Merge(merged, c); err != nil {
			return nil, err
		}
	}
	log := l.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, w := range merged.Warnings {
		log.Warn(w)
	}
	return merged, nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("load yml: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load yml %s: %w", p, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("load yml %s: file larger than %d bytes; is it really a linuxkit.yml?", p, MaxFileSize)
	}
	return data, nil
}

// topKeys are the sections of a linuxkit.yml, in LinuxKit's order.
var topKeys = []string{"kernel", "init", "onboot", "onshutdown", "services", "files", "volumes", "trust", "x-swarmboot"}

// Parse decodes and validates one yml document; file names it in errors.
func Parse(file string, data []byte) (c *Config, err error) {
	defer func() {
		if r := recover(); r != nil { // the YAML library must not crash us on hostile input
			c, err = nil, &Error{File: file, Msg: fmt.Sprintf("cannot parse YAML: %v", r)}
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	c = &Config{}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return c, nil // an empty file merges as nothing
	}
	root := doc.Content[0]
	d := &decoder{file: file}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return c, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, d.errf(root, "expected a mapping with the sections %s, got %s", strings.Join(topKeys, ", "), got(root))
	}
	// sections: null counts as empty; trust is accepted and ignored
	clean := &yaml.Node{Kind: yaml.MappingNode, Line: root.Line, Column: root.Column}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value == "trust" && k.Kind == yaml.ScalarNode {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: the trust section is ignored (swarmboot pins images by digest in the build manifest instead)", file, k.Line))
			continue
		}
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			continue
		}
		clean.Content = append(clean.Content, k, v)
	}
	if err := d.decode(clean, reflect.ValueOf(c).Elem(), ""); err != nil {
		return nil, err
	}
	// positions of init entries
	for i := 0; i+1 < len(clean.Content); i += 2 {
		if clean.Content[i].Value == "init" {
			for _, item := range clean.Content[i+1].Content {
				c.InitPos = append(c.InitPos, Pos{File: file, Line: item.Line})
			}
		}
		if clean.Content[i].Value == "kernel" {
			c.Kernel.Pos = Pos{File: file, Line: clean.Content[i].Line}
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// Merge appends b to a as LinuxKit's AppendConfig does: kernel fields set in
// b replace a's, every list (init, onboot, onshutdown, services, files,
// volumes) is appended; service and volume names must stay unique.
func Merge(a, b *Config) (*Config, error) {
	m := *a
	k := &m.Kernel
	if b.Kernel.Image != "" {
		k.Image, k.Pos = b.Kernel.Image, b.Kernel.Pos
	}
	if b.Kernel.Cmdline != "" {
		k.Cmdline = b.Kernel.Cmdline
	}
	if b.Kernel.Binary != "" {
		k.Binary = b.Kernel.Binary
	}
	if b.Kernel.Tar != nil {
		k.Tar = b.Kernel.Tar
	}
	if b.Kernel.UCode != nil {
		k.UCode = b.Kernel.UCode
	}
	m.Init = append(append([]string(nil), a.Init...), b.Init...)
	m.InitPos = append(append([]Pos(nil), a.InitPos...), b.InitPos...)
	m.Onboot = append(append([]*Image(nil), a.Onboot...), b.Onboot...)
	m.Onshutdown = append(append([]*Image(nil), a.Onshutdown...), b.Onshutdown...)
	m.Services = append(append([]*Image(nil), a.Services...), b.Services...)
	m.Files = append(append([]File(nil), a.Files...), b.Files...)
	m.Volumes = append(append([]*Volume(nil), a.Volumes...), b.Volumes...)
	m.Warnings = append(append([]string(nil), a.Warnings...), b.Warnings...)
	if b.Swarmboot != nil && b.Swarmboot.Agent != nil {
		agent := *b.Swarmboot.Agent
		m.Swarmboot = &Extensions{Agent: &agent}
	}
	if err := uniqueServices(m.Services); err != nil {
		return nil, err
	}
	seen := map[string]*Volume{}
	for _, v := range m.Volumes {
		if first, dup := seen[v.Name]; dup {
			return nil, posErr(v.Pos, "duplicate volume name %q (also at %s); volume names must be unique", v.Name, first.Pos)
		}
		seen[v.Name] = v
	}
	return &m, nil
}

// ImageRefs lists every image the config needs, each once, in build order.
func ImageRefs(c *Config) []string {
	var out []string
	seen := map[string]bool{}
	add := func(r string) {
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	add(c.Kernel.Image)
	for _, r := range c.Init {
		add(r)
	}
	for _, sec := range [][]*Image{c.Onboot, c.Onshutdown, c.Services} {
		for _, img := range sec {
			add(img.Image)
		}
	}
	for _, v := range c.Volumes {
		add(v.Image)
	}
	return out
}

// IDMap gives every onboot, onshutdown and service container a uid/gid from
// 100 up, by name, in LinuxKit's order; files and containers may refer to
// them by name.
func IDMap(c *Config) map[string]uint32 {
	ids := map[string]uint32{}
	id := uint32(100)
	for _, sec := range [][]*Image{c.Onboot, c.Onshutdown, c.Services} {
		for _, img := range sec {
			ids[img.Name] = id
			id++
		}
	}
	return ids
}

// Resolve turns an ID into a number using ids (from IDMap); nil and "root"
// are 0.
func Resolve(id *ID, ids map[string]uint32) (uint32, error) {
	if id == nil || id.Name == "root" || (id.Name == "" && id.Num == 0) {
		return 0, nil
	}
	if !id.IsName() {
		return id.Num, nil
	}
	if n, ok := ids[id.Name]; ok {
		return n, nil
	}
	return 0, fmt.Errorf("unknown user or group %q: use a number, \"root\" or the name of an onboot/onshutdown/service container", id.Name)
}

// Marshal writes c back as yml (keys in LinuxKit's order, unset fields left
// out). Parse(Marshal(c)) gives c again.
func Marshal(c *Config) ([]byte, error) {
	n := encode(reflect.ValueOf(c).Elem())
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("marshal yml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal yml: %w", err)
	}
	return buf.Bytes(), nil
}

package yml

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// nameRE is what a container or volume name may look like: it becomes a
// directory name under containers/.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func posErr(p Pos, format string, args ...any) error {
	return &Error{File: p.File, Line: p.Line, Msg: fmt.Sprintf(format, args...)}
}

func checkRef(p Pos, where, ref string) error {
	if ref == "" {
		return posErr(p, "%s: missing required key \"image\" (an image reference such as linuxkit/sshd:v1.0.0)", where)
	}
	if _, err := name.ParseReference(ref); err != nil {
		return posErr(p, "%s: invalid image reference %q: %v", where, ref, err)
	}
	return nil
}

func (c *Config) validate() error {
	if c.Kernel.Image != "" {
		if err := checkRef(c.Kernel.Pos, "kernel", c.Kernel.Image); err != nil {
			return err
		}
	} else if c.Kernel.Cmdline != "" || c.Kernel.Binary != "" || c.Kernel.Tar != nil || c.Kernel.UCode != nil {
		return posErr(c.Kernel.Pos, "kernel: missing required key \"image\" (the kernel image, e.g. linuxkit/kernel:6.6.71)")
	}
	for i, ref := range c.Init {
		if err := checkRef(c.InitPos[i], fmt.Sprintf("init[%d]", i), ref); err != nil {
			return err
		}
	}
	for _, sec := range []struct {
		name string
		imgs []*Image
	}{{"onboot", c.Onboot}, {"onshutdown", c.Onshutdown}, {"services", c.Services}} {
		for i, img := range sec.imgs {
			where := fmt.Sprintf("%s[%d]", sec.name, i)
			if img.Name == "" {
				return posErr(img.Pos, "%s: missing required key \"name\" (the container's name, e.g. name: sshd)", where)
			}
			if !nameRE.MatchString(img.Name) {
				return posErr(img.Pos, "%s: invalid name %q: use letters, digits, '.', '_' and '-' (it becomes a directory name)", where, img.Name)
			}
			if err := checkRef(img.Pos, fmt.Sprintf("%s(%s)", where, img.Name), img.Image); err != nil {
				return err
			}
		}
	}
	if err := uniqueServices(c.Services); err != nil {
		return err
	}
	for i := range c.Files {
		if err := c.Files[i].validate(fmt.Sprintf("files[%d]", i)); err != nil {
			return err
		}
	}
	seen := map[string]*Volume{}
	for i, v := range c.Volumes {
		where := fmt.Sprintf("volumes[%d]", i)
		if v.Name == "" {
			return posErr(v.Pos, "%s: missing required key \"name\"", where)
		}
		if !nameRE.MatchString(v.Name) {
			return posErr(v.Pos, "%s: invalid volume name %q: use letters, digits, '.', '_' and '-'", where, v.Name)
		}
		if first, dup := seen[v.Name]; dup {
			return posErr(v.Pos, "duplicate volume name %q (also at %s); volume names must be unique", v.Name, first.Pos)
		}
		seen[v.Name] = v
		if v.Image != "" {
			if err := checkRef(v.Pos, where, v.Image); err != nil {
				return err
			}
		}
	}
	return nil
}

func uniqueServices(svcs []*Image) error {
	seen := map[string]*Image{}
	for _, s := range svcs {
		if first, dup := seen[s.Name]; dup {
			return posErr(s.Pos, "duplicate service name %q (also at %s); service names must be unique, they run side by side", s.Name, first.Pos)
		}
		seen[s.Name] = s
	}
	return nil
}

// CleanPath returns a files path relative to / ("etc/hosts"), or an error
// if it is empty or leaves the root.
func CleanPath(p string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return "", fmt.Errorf("empty path")
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", fmt.Errorf("path %q contains \"..\"", p)
		}
	}
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "", fmt.Errorf("path %q is the root directory", p)
	}
	return c, nil
}

// FileMode returns the file's mode: Mode parsed as octal, else 0600 for
// files and 0700 for directories (LinuxKit's defaults).
func (f *File) FileMode() (uint32, error) {
	if f.Mode == "" {
		if f.Directory {
			return 0o700, nil
		}
		return 0o600, nil
	}
	m, err := strconv.ParseUint(f.Mode, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal permission such as \"0644\"", f.Mode)
	}
	return uint32(m), nil
}

func (f *File) validate(where string) error {
	if f.Path == "" {
		return posErr(f.Pos, "%s: missing required key \"path\"", where)
	}
	if _, err := CleanPath(f.Path); err != nil {
		return posErr(f.Pos, "%s: %v", where, err)
	}
	where = fmt.Sprintf("%s(%s)", where, f.Path)
	if _, err := f.FileMode(); err != nil {
		return posErr(f.Pos, "%s: %v", where, err)
	}
	kinds := 0
	for _, set := range []bool{f.Directory, f.Symlink != "", f.Contents != nil, f.Source != "", f.Metadata != ""} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		return posErr(f.Pos, "%s: say what the file is: one of directory, symlink, contents, source or metadata", where)
	case kinds > 1:
		return posErr(f.Pos, "%s: directory, symlink, contents, source and metadata exclude each other; keep one", where)
	}
	if f.Metadata != "" && f.Metadata != "yaml" && f.Metadata != "json" {
		return posErr(f.Pos, "%s: metadata must be \"yaml\" or \"json\", got %q", where, f.Metadata)
	}
	return nil
}

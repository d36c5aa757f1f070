package lab

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// libDirs are where the dynamic linker of Debian amd64 looks for libraries.
var libDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"}

// AddFromRoot adds the files at names (relative paths inside root, a
// directory of extracted Debian packages) to t, following symlinks inside
// root. ELF executables and libraries bring their interpreter and every
// shared library they need (DT_NEEDED, transitively), found in root.
func (t *Tree) AddFromRoot(root string, names ...string) error {
	seen := map[string]bool{}
	var add func(name string) error
	add = func(name string) error {
		name = clean(name)
		if seen[name] {
			return nil
		}
		seen[name] = true
		src := filepath.Join(root, name)
		st, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("lab: %s not in the staged packages: %w", name, err)
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			t.Symlink(name, target)
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			return add(target)
		case st.IsDir():
			ents, err := os.ReadDir(src)
			if err != nil {
				return err
			}
			t.Dir(name, st.Mode())
			for _, e := range ents {
				if err := add(path.Join(name, e.Name())); err != nil {
					return err
				}
			}
			return nil
		case !st.Mode().IsRegular():
			return fmt.Errorf("lab: %s: unsupported file type %v", name, st.Mode().Type())
		}
		t.Add(Entry{Name: name, Mode: st.Mode() & (fs.ModePerm | fs.ModeSetuid), Src: src})
		needs, err := elfNeeds(src)
		if err != nil {
			return fmt.Errorf("lab: %s: %w", name, err)
		}
		for _, lib := range needs {
			if strings.HasPrefix(lib, "/") {
				if err := add(lib); err != nil {
					return err
				}
				continue
			}
			found := false
			for _, d := range libDirs {
				if _, err := os.Lstat(filepath.Join(root, d, lib)); err == nil {
					if err := add(path.Join(d, lib)); err != nil {
						return err
					}
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("lab: %s needs %s, which no staged package provides (add its package)", name, lib)
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return err
		}
	}
	return nil
}

// elfNeeds returns the interpreter and DT_NEEDED libraries of an ELF file,
// or nothing for other files (scripts, data).
func elfNeeds(file string) ([]string, error) {
	magic := make([]byte, 4)
	if fh, err := os.Open(file); err != nil {
		return nil, err
	} else {
		n, _ := fh.Read(magic)
		fh.Close()
		if n < 4 || string(magic) != elf.ELFMAG {
			return nil, nil
		}
	}
	f, err := elf.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, err
			}
			out = append(out, strings.TrimRight(string(b), "\x00"))
		}
	}
	if f.Type != elf.ET_DYN && f.Type != elf.ET_EXEC {
		return out, nil // kernel modules and objects
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	return append(out, libs...), nil
}

package rootfs

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"gopkg.in/yaml.v3"

	"github.com/swarmboot/swarmboot/images/yml"
)

// maxSourceFile bounds a files entry read from the build host.
const maxSourceFile = 256 << 20

// files writes the files section. Unlike LinuxKit, parent directories that
// already exist in the stream keep their metadata (LinuxKit re-emits them
// with the file's mode and owner).
func (a *assembler) files() error {
	for i := range a.c.Files {
		f := &a.c.Files[i]
		where := fmt.Sprintf("%s: files[%d](%s)", f.Pos, i, f.Path)
		name, err := yml.CleanPath(f.Path)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		mode, err := f.FileMode()
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		uid, err := yml.Resolve(f.UID, a.ids)
		if err != nil {
			return fmt.Errorf("%s: uid: %w", where, err)
		}
		gid, err := yml.Resolve(f.GID, a.ids)
		if err != nil {
			return fmt.Errorf("%s: gid: %w", where, err)
		}
		perm := fs.FileMode(mode).Perm()
		dirMode := perm
		for _, bits := range []fs.FileMode{0o700, 0o070, 0o007} {
			if dirMode&bits != 0 {
				dirMode |= bits & 0o111
			}
		}
		if err := a.mkdirs(path.Dir(name), dirMode, int(uid), int(gid)); err != nil {
			return err
		}
		h := &Header{Name: name, Mode: perm, Uid: int(uid), Gid: int(gid)}
		switch {
		case f.Directory:
			h.Mode |= fs.ModeDir
			err = a.out.entry(h, nil)
		case f.Symlink != "":
			h.Mode |= fs.ModeSymlink
			h.Linkname = f.Symlink
			err = a.out.entry(h, nil)
		default:
			var data []byte
			switch {
			case f.Contents != nil:
				data = []byte(*f.Contents)
			case f.Metadata != "":
				data, err = metadata(a.c, f.Metadata)
			case f.Source != "":
				var skip bool
				data, skip, err = readSource(f, a.opt.DenySourceDirs)
				if skip {
					a.opt.Logger.Info("rootfs: optional file source missing, skipped", "path", f.Path, "source", f.Source)
					continue
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			h.Size = int64(len(data))
			err = a.out.entry(h, strings.NewReader(string(data)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// mkdirs writes the directories leading to dir that the stream lacks.
func (a *assembler) mkdirs(dir string, mode fs.FileMode, uid, gid int) error {
	if dir == "." || dir == "" {
		return nil
	}
	if _, ok := a.out.seen[dir]; ok {
		return nil
	}
	if err := a.mkdirs(path.Dir(dir), mode, uid, gid); err != nil {
		return err
	}
	return a.out.dir(dir, &Header{Mode: fs.ModeDir | mode, Uid: uid, Gid: gid})
}

// readSource reads a files entry's source: "~/" is the home directory, a
// relative path is relative to the yml file that declared it.
func readSource(f *yml.File, deny []string) (data []byte, skip bool, err error) {
	src := f.Source
	if strings.HasPrefix(src, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, false, fmt.Errorf("source %s: %w", src, err)
		}
		src = filepath.Join(home, src[2:])
	} else if !filepath.IsAbs(src) && f.Pos.File != "" {
		src = filepath.Join(filepath.Dir(f.Pos.File), src)
	}
	if real, err := realAbs(src); err == nil {
		for _, d := range deny {
			if rd, err := realAbs(d); err == nil && (real == rd || strings.HasPrefix(real, rd+string(filepath.Separator))) {
				return nil, false, fmt.Errorf("source %s is inside %s, which holds swarmboot's secrets; copy what the image may carry elsewhere", src, d)
			}
		}
	}
	fh, err := os.Open(src)
	if err != nil {
		if f.Optional {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("source: %w (mark the entry optional: true if it may be missing)", err)
	}
	defer fh.Close()
	data, err = readAllMax(fh, maxSourceFile)
	if err != nil {
		return nil, false, fmt.Errorf("source %s: %w", src, err)
	}
	return data, false, nil
}

// realAbs is p with symlinks resolved, absolute (a relative --data-dir and
// an absolute source must still compare).
func realAbs(p string) (string, error) {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	return filepath.Abs(r)
}

// metadata renders the whole config as yaml or json (files[].metadata).
func metadata(c *yml.Config, kind string) ([]byte, error) {
	y, err := yml.Marshal(c)
	if err != nil {
		return nil, err
	}
	if kind == "yaml" {
		return y, nil
	}
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return json.MarshalIndent(v, "", "    ")
}

// volumes writes containers/volumes/NAME/{lower,tmp,merged}, the lower
// directory holding the volume's image if it has one.
func (a *assembler) volumes(ctx context.Context) error {
	for i, v := range a.c.Volumes {
		base := path.Join("containers", "volumes", v.Name)
		lower := path.Join(base, "lower")
		for _, d := range []string{base, lower} {
			if err := a.out.dir(d, &Header{Mode: fs.ModeDir | 0o755}); err != nil {
				return err
			}
		}
		if v.Image != "" {
			si, _, err := a.stackImage(v.Pos, fmt.Sprintf("volumes[%d](%s)", i, v.Name), v.Image)
			if err != nil {
				return err
			}
			s := &stack{prefix: lower + "/", images: []stackImage{si}}
			if err := s.flatten(ctx, a.out); err != nil {
				return fmt.Errorf("%s: volumes[%d](%s): %w", v.Pos, i, v.Name, err)
			}
		}
		for _, d := range []string{path.Join(base, "tmp"), path.Join(base, "merged")} {
			if err := a.out.dir(d, &Header{Mode: fs.ModeDir | 0o755}); err != nil {
				return err
			}
		}
	}
	return nil
}

// volumeBinds rewrites binds and bind mounts whose source is a volume name
// to the volume's merged directory, refusing read-write use of a read-only
// volume (LinuxKit's updateMountsAndBindsFromVolumes).
func (a *assembler) volumeBinds(img *yml.Image) (*yml.Image, error) {
	vols := map[string]*yml.Volume{}
	for _, v := range a.c.Volumes {
		vols[v.Name] = v
	}
	out := *img
	rewrite := func(list *[]string) (*[]string, error) {
		if list == nil {
			return nil, nil
		}
		var res []string
		for _, b := range *list {
			parts := strings.Split(b, ":")
			if strings.HasPrefix(parts[0], "/") || len(parts) < 2 {
				res = append(res, b)
				continue
			}
			v := vols[parts[0]]
			if v == nil {
				return nil, fmt.Errorf("bind %q: no volume named %q (declare it under volumes: or use an absolute path)", b, parts[0])
			}
			if v.ReadOnly && (len(parts) < 3 || parts[2] != "ro") {
				return nil, fmt.Errorf("bind %q: volume %s is read-only; add :ro", b, v.Name)
			}
			parts[0] = "/" + path.Join("containers", "volumes", v.Name, "merged")
			res = append(res, strings.Join(parts, ":"))
		}
		return &res, nil
	}
	var err error
	if out.Binds, err = rewrite(img.Binds); err != nil {
		return nil, err
	}
	if out.BindsAdd, err = rewrite(img.BindsAdd); err != nil {
		return nil, err
	}
	if img.Mounts != nil {
		ms := append([]specs.Mount(nil), *img.Mounts...)
		for i, m := range ms {
			if m.Type != "bind" || strings.HasPrefix(m.Source, "/") {
				continue
			}
			v := vols[m.Source]
			if v == nil {
				return nil, fmt.Errorf("mount of %q: no volume named %q", m.Destination, m.Source)
			}
			if v.ReadOnly && !readOnlyOpts(m.Options) {
				return nil, fmt.Errorf("mount of %q: volume %s is read-only; add option ro", m.Destination, v.Name)
			}
			ms[i].Source = "/" + path.Join("containers", "volumes", v.Name, "merged")
		}
		out.Mounts = &ms
	}
	return &out, nil
}

func readOnlyOpts(opts []string) bool {
	for _, o := range opts {
		if o == "rw" {
			return false
		}
		if o == "ro" {
			return true
		}
	}
	return false
}

package rootfs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/swarmboot/swarmboot/images/yml"
)

// Options tune Assemble. The zero value is usable.
type Options struct {
	// Platform of the images, default "linux/amd64".
	Platform string
	// ModTime is stamped on every entry (default: the Unix epoch).
	ModTime time.Time
	// Agent, when set, bakes the swarmboot agent in as a service unless the
	// yml opts out (see Agent).
	Agent *Agent
	// Logger receives progress and warnings; nil discards.
	Logger *slog.Logger
	// DenySourceDirs are directories files[].source may not read from (after
	// resolving symlinks): swarmboot's data directory holds the CA key and
	// tokens, which must never end up in an image.
	DenySourceDirs []string
}

// Result is what Assemble returns besides the stream.
type Result struct {
	Kernel  []byte        // the kernel image (bzImage); nil when the yml has no kernel
	Ucode   []byte        // CPU microcode cpio to put before the initrd, if kernel.ucode is set
	Cmdline string        // kernel.cmdline
	Images  []ImageDigest // every image used, in build order
}

// ImageDigest names one image and the digest of its manifest.
type ImageDigest struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// emitter writes entries, creating missing parent directories, skipping
// directories already written and stamping the fixed time.
type emitter struct {
	w    Writer
	mod  time.Time
	seen map[string]fs.FileMode
	log  *slog.Logger
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, io.EOF }

func (e *emitter) parents(name string) error {
	dir := path.Dir(name)
	if dir == "." || dir == "/" {
		return nil
	}
	if _, ok := e.seen[dir]; ok {
		return nil
	}
	return e.dir(dir, &Header{Mode: fs.ModeDir | 0o755})
}

// dir writes directory name with h's metadata unless it was written before.
func (e *emitter) dir(name string, h *Header) error {
	if m, ok := e.seen[name]; ok && m.IsDir() {
		return nil
	}
	d := *h
	d.Name, d.Size, d.Linkname = name, 0, ""
	d.Mode = fs.ModeDir | h.Mode.Perm() | h.Mode&(fs.ModeSetgid|fs.ModeSticky|fs.ModeSetuid)
	return e.entry(&d, emptyReader{})
}

func (e *emitter) entry(h *Header, r io.Reader) error {
	if m, ok := e.seen[path.Dir(h.Name)]; ok && !m.IsDir() {
		e.log.Warn("rootfs: skipping entry below a non-directory", "name", h.Name)
		return nil
	}
	if err := e.parents(h.Name); err != nil {
		return err
	}
	h.ModTime = e.mod
	if h.Mode.Type() != 0 {
		h.Size = 0
	}
	if r == nil {
		r = emptyReader{}
	}
	if err := e.w.WriteEntry(h, r); err != nil {
		return fmt.Errorf("write %s: %w", h.Name, err)
	}
	e.seen[h.Name] = h.Mode.Type()
	return nil
}

// assembler holds one Assemble run.
type assembler struct {
	c      *yml.Config
	src    ImageSource
	opt    Options
	out    *emitter
	res    *Result
	ids    map[string]uint32
	dups   map[string]string // image ref → where its rootfs was extracted
	digest map[string]bool
}

// Assemble streams the root filesystem of c to w in LinuxKit's layout (see
// the package doc) and returns the kernel, command line and image digests.
// Images come from src; a missing one is an error naming the yml line and
// the image.
func Assemble(ctx context.Context, c *yml.Config, src ImageSource, w Writer, opt Options) (*Result, error) {
	if opt.Platform == "" {
		opt.Platform = "linux/amd64"
	}
	if opt.ModTime.IsZero() {
		opt.ModTime = time.Unix(0, 0)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	c, src, err := withAgent(c, src, opt.Agent)
	if err != nil {
		return nil, err
	}
	a := &assembler{
		c: c, src: src, opt: opt,
		out:    &emitter{w: w, mod: opt.ModTime, seen: map[string]fs.FileMode{}, log: opt.Logger},
		res:    &Result{Cmdline: c.Kernel.Cmdline},
		ids:    yml.IDMap(c),
		dups:   map[string]string{},
		digest: map[string]bool{},
	}
	if c.Kernel.Image != "" {
		if err := a.kernel(ctx); err != nil {
			return nil, err
		}
	}
	if err := a.init(ctx); err != nil {
		return nil, err
	}
	if err := a.volumes(ctx); err != nil {
		return nil, err
	}
	for _, sec := range []struct {
		name     string
		imgs     []*yml.Image
		numbered bool
	}{{"onboot", c.Onboot, true}, {"onshutdown", c.Onshutdown, true}, {"services", c.Services, false}} {
		for i, img := range sec.imgs {
			dir := img.Name
			if sec.numbered {
				dir = fmt.Sprintf("%03d-%s", i, img.Name)
			}
			if err := a.container(ctx, sec.name, i, dir, img); err != nil {
				return nil, err
			}
		}
	}
	if err := a.files(); err != nil {
		return nil, err
	}
	return a.res, nil
}

// image fetches ref from the store and records its digest.
func (a *assembler) image(pos yml.Pos, where, ref string) (v1.Image, error) {
	img, err := a.src.Image(ref, a.opt.Platform)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", pos, where, err)
	}
	if !a.digest[ref] {
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: image %s: %w", pos, where, ref, err)
		}
		a.digest[ref] = true
		a.res.Images = append(a.res.Images, ImageDigest{Ref: ref, Digest: d.String()})
	}
	return img, nil
}

func (a *assembler) stackImage(pos yml.Pos, where, ref string) (stackImage, v1.Image, error) {
	img, err := a.image(pos, where, ref)
	if err != nil {
		return stackImage{}, nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return stackImage{}, nil, fmt.Errorf("%s: %s: image %s: %w", pos, where, ref, err)
	}
	return stackImage{ref: ref, layers: layers}, img, nil
}

// init flattens every init image into /, later images over earlier ones.
func (a *assembler) init(ctx context.Context) error {
	if len(a.c.Init) == 0 {
		return nil
	}
	s := &stack{fixups: fixups{resolvSymlink: "/run/resolvconf/resolv.conf", mergeAPK: true}}
	for i, ref := range a.c.Init {
		pos := yml.Pos{}
		if i < len(a.c.InitPos) {
			pos = a.c.InitPos[i]
		}
		si, _, err := a.stackImage(pos, fmt.Sprintf("init[%d]", i), ref)
		if err != nil {
			return err
		}
		s.images = append(s.images, si)
	}
	a.opt.Logger.Info("rootfs: init", "images", len(s.images))
	if err := s.flatten(ctx, a.out); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return nil
}

// container writes containers/<section>/<dir>/ with config.json,
// runtime.json and the image's root filesystem.
func (a *assembler) container(ctx context.Context, section string, index int, dir string, entry *yml.Image) error {
	where := fmt.Sprintf("%s[%d](%s)", section, index, entry.Name)
	img, err := a.image(entry.Pos, where, entry.Image)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("%s: %s: image %s: read config: %w", entry.Pos, where, entry.Image, err)
	}
	label, err := yml.ParseLabel(cf.Config.Labels[yml.LabelKey])
	if err != nil {
		return fmt.Errorf("%s: %s: image %s: %w", entry.Pos, where, entry.Image, err)
	}
	resolved, err := a.volumeBinds(entry)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", entry.Pos, where, err)
	}
	spec, runtime, err := yml.RuntimeConfigIDs(resolved, label, cf.Config, a.ids)
	if err != nil {
		return err
	}
	config, err := json.MarshalIndent(spec, "", "    ")
	if err != nil {
		return fmt.Errorf("%s: %s: config.json: %w", entry.Pos, where, err)
	}
	prefix := path.Join("containers", section, dir)
	readonly := spec.Root.Readonly
	rootDir := path.Join(prefix, "rootfs")
	if !readonly {
		rootDir = path.Join(prefix, "lower")
	}
	a.opt.Logger.Info("rootfs: container", "section", section, "name", entry.Name, "image", entry.Image)
	if err := a.out.dir(prefix, &Header{Mode: fs.ModeDir | 0o755}); err != nil {
		return err
	}
	found, dup := a.dups[entry.Image]
	if dup {
		rootDir = found
	} else {
		layers, err := img.Layers()
		if err != nil {
			return fmt.Errorf("%s: %s: image %s: %w", entry.Pos, where, entry.Image, err)
		}
		s := &stack{prefix: rootDir + "/", images: []stackImage{{ref: entry.Image, layers: layers}}}
		if err := a.out.dir(rootDir, &Header{Mode: fs.ModeDir | 0o755}); err != nil {
			return err
		}
		if err := s.flatten(ctx, a.out); err != nil {
			return fmt.Errorf("%s: %s: %w", entry.Pos, where, err)
		}
		a.dups[entry.Image] = rootDir
	}
	if err := a.file(path.Join(prefix, "config.json"), config); err != nil {
		return err
	}
	var rootfsMounts []specs.Mount
	if !readonly {
		tmp := path.Join(prefix, "tmp")
		for _, d := range []string{tmp, path.Join(prefix, "rootfs")} {
			if err := a.out.dir(d, &Header{Mode: fs.ModeDir | 0o755}); err != nil {
				return err
			}
		}
		rootfsMounts = []specs.Mount{
			{Source: "tmpfs", Type: "tmpfs", Destination: "/" + tmp},
			{Destination: "/" + tmp, Options: []string{"remount", "private"}},
			{Source: "overlay", Type: "overlay", Destination: "/" + path.Join(prefix, "rootfs"),
				Options: []string{"lowerdir=/" + rootDir, "upperdir=/" + path.Join(tmp, "upper"), "workdir=/" + path.Join(tmp, "work")}},
		}
	} else {
		if dup {
			if err := a.out.dir(path.Join(prefix, "rootfs"), &Header{Mode: fs.ModeDir | 0o755}); err != nil {
				return err
			}
		}
		rootfsMounts = []specs.Mount{{Source: "/" + rootDir, Destination: "/" + path.Join(prefix, "rootfs"), Options: []string{"bind"}}}
	}
	mounts := append(rootfsMounts, *runtime.Mounts...)
	runtime.Mounts = &mounts
	rj, err := json.MarshalIndent(runtime, "", "    ")
	if err != nil {
		return fmt.Errorf("%s: %s: runtime.json: %w", entry.Pos, where, err)
	}
	return a.file(path.Join(prefix, "runtime.json"), rj)
}

// file writes a small generated file owned by root.
func (a *assembler) file(name string, data []byte) error {
	return a.out.entry(&Header{Name: name, Mode: 0o644, Size: int64(len(data))}, strings.NewReader(string(data)))
}

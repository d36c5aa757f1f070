package rootfs

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// A stack is one or more images whose layers are flattened into one tree
// under a prefix: one image for a container's rootfs, every init image for
// "/". Whiteouts act on the lower layers of their own image only; a later
// image simply overwrites an earlier one, as LinuxKit's extraction does.
type stack struct {
	prefix string // "" or "containers/services/sshd/lower/"
	images []stackImage
	fixups fixups
	apkDBs []apkDB // with fixups.mergeAPK: each image's apk database
}

// apkInstalled is apk's database of installed packages; LinuxKit writes the
// union of every init image's copy (moby/apk_tarwriter.go).
const apkInstalled = "lib/apk/db/installed"

// apkDB is where one image's surviving apk database lives.
type apkDB struct{ img, layer, ordinal int }

type stackImage struct {
	ref    string
	layers []v1.Layer
}

// fixups are LinuxKit's adjustments of an image's exported tree
// (moby/build/image.go): some files dropped, some replaced, some ensured.
type fixups struct {
	resolvSymlink string // init images: etc/resolv.conf → this symlink
	mergeAPK      bool   // init images: union of the apk databases
}

var excluded = map[string]bool{
	".dockerenv": true, "Dockerfile": true, "dev/console": true,
	"dev/pts": true, "dev/shm": true, "etc/hostname": true,
}

const hostsFile = `127.0.0.1       localhost
::1     localhost ip6-localhost ip6-loopback
fe00::0 ip6-localnet
ff00::0 ip6-mcastprefix
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
`

const resolvFile = "\n# no resolv.conf configured\n"

// entry is where the surviving version of a path lives.
type entry struct {
	img, layer int // indexes into stack.images and its layers
	ordinal    int // position in the layer's tar (a path may repeat)
	hdr        *Header
	synthetic  []byte // content made by us, not read from a layer
}

// under reports whether name is dir itself or inside it.
func under(name, dir string) bool {
	return name == dir || strings.HasPrefix(name, dir+"/")
}

// op is one entry of a layer as pass 1 sees it.
type op struct {
	ord  int
	name string
	kind opKind
	hdr  *Header
}

type opKind uint8

const (
	opEntry    opKind = iota
	opWhiteout        // name is the path removed
	opOpaque          // name is the directory emptied ("" for the root)
)

// readOps reads one layer's headers (no contents).
func readOps(ctx context.Context, l v1.Layer) ([]op, error) {
	var ops []op
	err := forEachEntry(ctx, l, func(ord int, th *tar.Header, name string, _ io.Reader) error {
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == ".wh..wh..opq":
			ops = append(ops, op{ord: ord, name: dir, kind: opOpaque})
		case strings.HasPrefix(base, ".wh..wh."):
			// aufs bookkeeping
		case strings.HasPrefix(base, ".wh."):
			ops = append(ops, op{ord: ord, name: path.Join(dir, strings.TrimPrefix(base, ".wh.")), kind: opWhiteout})
		default:
			h, err := tarHeader(th, name)
			if err != nil || h == nil {
				return err
			}
			ops = append(ops, op{ord: ord, name: name, hdr: h})
		}
		return nil
	})
	return ops, err
}

// scan is pass 1: it reads every header of every layer (layers in
// parallel), then applies them bottom up and returns the surviving entries.
func (s *stack) scan(ctx context.Context) (map[string]*entry, error) {
	type job struct{ img, layer int }
	var jobs []job
	ops := make([][][]op, len(s.images))
	for ii, im := range s.images {
		ops[ii] = make([][]op, len(im.layers))
		for li := range im.layers {
			jobs = append(jobs, job{ii, li})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		g.Go(func() error {
			o, err := readOps(gctx, s.images[j.img].layers[j.layer])
			if err != nil {
				return fmt.Errorf("image %s: layer %d: %w", s.images[j.img].ref, j.layer, err)
			}
			ops[j.img][j.layer] = o
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	state := map[string]*entry{}
	parents := map[string]bool{} // names something was put below
	removeUnder := func(dir string, img, belowLayer int, self bool) {
		for name, e := range state {
			if e.img == img && e.layer < belowLayer && (dir == "" || under(name, dir)) && (self || name != dir) {
				delete(state, name)
			}
		}
	}
	for ii := range s.images {
		for li, layerOps := range ops[ii] {
			for _, o := range layerOps {
				switch o.kind {
				case opOpaque:
					removeUnder(o.name, ii, li, false)
					continue
				case opWhiteout:
					removeUnder(o.name, ii, li, true)
					continue
				}
				name := o.name
				// every ancestor is a directory: a non-directory in the way gives way
				for d := path.Dir(name); d != "."; d = path.Dir(d) {
					if e, ok := state[d]; ok && !e.hdr.Mode.IsDir() {
						delete(state, d)
					}
					parents[d] = true
				}
				// a non-directory hides whatever was below that name
				if !o.hdr.Mode.IsDir() && parents[name] {
					for n := range state {
						if strings.HasPrefix(n, name+"/") {
							delete(state, n)
						}
					}
					delete(parents, name)
				}
				state[name] = &entry{img: ii, layer: li, ordinal: o.ord, hdr: o.hdr}
			}
		}
	}
	if s.fixups.mergeAPK {
		s.apkDBs = findAPKDBs(ops)
	}
	s.fix(state)
	return state, nil
}

// findAPKDBs finds each image's surviving apk database, whiteouts honoured.
func findAPKDBs(ops [][][]op) []apkDB {
	var dbs []apkDB
	for ii := range ops {
		cur := apkDB{img: ii, layer: -1}
		for li, layerOps := range ops[ii] {
			for _, o := range layerOps {
				switch {
				case o.kind == opEntry && o.name == apkInstalled && o.hdr.Mode.IsRegular() && !o.hdr.IsHardlink():
					cur.layer, cur.ordinal = li, o.ord
				case o.kind == opEntry && under(apkInstalled, o.name) && !o.hdr.Mode.IsDir():
					cur.layer = -1
				case o.kind == opWhiteout && under(apkInstalled, o.name) && cur.layer < li:
					cur.layer = -1
				case o.kind == opOpaque && (o.name == "" || under(apkInstalled, o.name)) && cur.layer < li:
					cur.layer = -1
				}
			}
		}
		if cur.layer >= 0 {
			dbs = append(dbs, cur)
		}
	}
	return dbs
}

// fix applies LinuxKit's export adjustments to the surviving entries.
func (s *stack) fix(state map[string]*entry) {
	for name := range excluded {
		delete(state, name)
	}
	last := len(s.images) - 1
	synth := func(name string, h *Header, data []byte) {
		h.Name = name
		state[name] = &entry{img: last, layer: -1, hdr: h, synthetic: data}
	}
	for _, d := range []string{"dev", "dev/pts", "dev/shm", "etc", "proc", "sys"} {
		if e, ok := state[d]; !ok || !e.hdr.Mode.IsDir() {
			synth(d, &Header{Mode: fs.ModeDir | 0o755}, nil)
		}
	}
	if e, ok := state["etc/mtab"]; !ok || e.hdr.Mode.Type() != fs.ModeSymlink {
		synth("etc/mtab", &Header{Mode: fs.ModeSymlink | 0o755, Linkname: "/proc/mounts"}, nil)
	}
	synth("etc/hosts", &Header{Mode: 0o644, Size: int64(len(hostsFile))}, []byte(hostsFile))
	if s.fixups.resolvSymlink != "" {
		synth("etc/resolv.conf", &Header{Mode: fs.ModeSymlink | 0o644, Linkname: s.fixups.resolvSymlink}, nil)
	} else {
		synth("etc/resolv.conf", &Header{Mode: 0o644, Size: int64(len(resolvFile))}, []byte(resolvFile))
	}
}

// emit is pass 2: directories first, in name order (so every parent comes
// before its children), then every other surviving entry layer by layer,
// then the synthesized files, then hard links (after their targets).
func (s *stack) emit(ctx context.Context, out *emitter, state map[string]*entry) error {
	names := make([]string, 0, len(state))
	for name, e := range state {
		if e.hdr.Mode.IsDir() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if err := out.dir(s.prefix+name, state[name].hdr); err != nil {
			return err
		}
	}
	var links []*Header
	merge := len(s.apkDBs) > 1
	dbs := make([][]byte, len(s.apkDBs))
	for ii, im := range s.images {
		for li, l := range im.layers {
			err := forEachEntry(ctx, l, func(ord int, _ *tar.Header, name string, r io.Reader) error {
				if merge && name == apkInstalled {
					for i, db := range s.apkDBs {
						if db == (apkDB{ii, li, ord}) {
							var err error
							dbs[i], err = readAllMax(r, maxKernel)
							return err // written merged, below
						}
					}
				}
				e, ok := state[name]
				if !ok || e.img != ii || e.layer != li || e.ordinal != ord || e.hdr.Mode.IsDir() {
					return nil
				}
				h := *e.hdr
				h.Name = s.prefix + name
				if h.IsHardlink() {
					h.Linkname = s.prefix + h.Linkname
					links = append(links, &h)
					return nil
				}
				return out.entry(&h, r)
			})
			if err != nil {
				return fmt.Errorf("image %s: layer %d: %w", im.ref, li, err)
			}
		}
	}
	var synth []string
	for name, e := range state {
		if e.layer == -1 && !e.hdr.Mode.IsDir() {
			synth = append(synth, name)
		}
	}
	sort.Strings(synth)
	for _, name := range synth {
		e := state[name]
		h := *e.hdr
		h.Name = s.prefix + name
		if err := out.entry(&h, strings.NewReader(string(e.synthetic))); err != nil {
			return err
		}
	}
	if merge {
		var all []byte
		for _, db := range dbs {
			all = append(append(all, db...), '\n', '\n')
		}
		h := &Header{Name: s.prefix + apkInstalled, Mode: 0o644, Size: int64(len(all))}
		if err := out.entry(h, strings.NewReader(string(all))); err != nil {
			return err
		}
	}
	for _, h := range links {
		target, ok := state[strings.TrimPrefix(h.Linkname, s.prefix)]
		if !ok || target.hdr.Mode.Type() != 0 || target.hdr.IsHardlink() {
			out.log.Warn("rootfs: dropping hard link whose target is gone", "link", h.Name, "target", h.Linkname)
			continue
		}
		if err := out.entry(h, strings.NewReader("")); err != nil {
			return err
		}
	}
	return nil
}

// flatten runs both passes.
func (s *stack) flatten(ctx context.Context, out *emitter) error {
	state, err := s.scan(ctx)
	if err != nil {
		return err
	}
	return s.emit(ctx, out, state)
}

// Package build turns a root filesystem stream into the boot artifacts of
// one image: NAME-kernel, NAME-initrd.img (gzip'd newc), NAME-cmdline, the
// hybrid BIOS/UEFI NAME.iso, NAME.version (the build's version, see
// ReadVersion; also baked into the image) and NAME.manifest.json (image
// digests, sha256 and size of every artifact, build time, swarmboot
// version). Every file is written to a temporary name and renamed; the
// same inputs give the same bytes (timestamps come from SOURCE_DATE_EPOCH
// or the Unix epoch) and the same version.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/swarmboot/swarmboot/images/build/imageversion"
	"github.com/swarmboot/swarmboot/images/iso"
	"github.com/swarmboot/swarmboot/images/rootfs"
)

// Output formats.
const (
	FormatKernelInitrd = "kernel+initrd"
	FormatISO          = "iso"
)

// Formats lists the formats Build knows.
var Formats = []string{FormatKernelInitrd, FormatISO}

// Source produces an image's root filesystem, entry by entry, and its
// kernel. FromYML adapts a linuxkit.yml and the image store.
type Source interface {
	Assemble(ctx context.Context, w rootfs.Writer) (*Rootfs, error)
}

// Rootfs is what a Source returns besides the stream.
type Rootfs struct {
	Kernel  []byte     // the kernel image (bzImage)
	Ucode   []byte     // optional uncompressed cpio with CPU microcode, put before the initrd
	Cmdline string     // kernel command line
	Images  []ImageRef // images the rootfs was made of
}

// timedSource is a Source that takes Build's timestamp and logger.
type timedSource interface {
	setDefaults(modTime time.Time, log *slog.Logger)
}

// ImageRef names one image and its digest.
type ImageRef struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// Options control one build.
type Options struct {
	Formats []string // default: both
	Name    string   // artifact prefix (required)
	OutDir  string   // created if missing
	// Progress receives progress; Terminal makes it one live line.
	Progress io.Writer
	Terminal bool
	Log      *slog.Logger
	// Epoch is stamped on every file in the artifacts and is the manifest's
	// build time when set. Default: SOURCE_DATE_EPOCH, else the Unix epoch
	// for contents and the current time for the manifest.
	Epoch time.Time
	// ISO passes boot asset paths through (Kernel/Initrd/Cmdline are set by Build).
	ISO iso.Options
	// Now is the clock for the manifest's build time (tests); default time.Now.
	Now func() time.Time
}

// ErrOptions wraps invalid options.
var ErrOptions = errors.New("build: invalid options")

func (o *Options) check() error {
	if len(o.Formats) == 0 {
		o.Formats = Formats
	}
	for _, f := range o.Formats {
		if !slices.Contains(Formats, f) {
			return fmt.Errorf("%w: unknown format %q (want %s)", ErrOptions, f, strings.Join(Formats, ", "))
		}
	}
	if o.Name == "" || strings.ContainsAny(o.Name, "/\\") || strings.HasPrefix(o.Name, ".") {
		return fmt.Errorf("%w: name %q: want a plain file name prefix", ErrOptions, o.Name)
	}
	if err := imageversion.CheckName(o.Name); err != nil { // the name is part of the version
		return fmt.Errorf("%w: name %q: %w", ErrOptions, o.Name, err)
	}
	if o.OutDir == "" {
		return fmt.Errorf("%w: no output directory", ErrOptions)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// SourceDateEpoch returns $SOURCE_DATE_EPOCH as a time, or the zero time
// when it is unset; an invalid value is an error.
func SourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// Build assembles src and writes the artifacts opt asks for. It returns the
// manifest it wrote.
func Build(ctx context.Context, src Source, opt Options) (*Manifest, error) {
	if err := opt.check(); err != nil {
		return nil, err
	}
	epoch := opt.Epoch
	if epoch.IsZero() {
		var err error
		if epoch, err = SourceDateEpoch(); err != nil {
			return nil, err
		}
	}
	buildTime := epoch
	if buildTime.IsZero() {
		buildTime = opt.Now().UTC().Truncate(time.Second)
	}
	modTime := epoch
	if modTime.IsZero() {
		modTime = time.Unix(0, 0).UTC()
	}
	if slices.Contains(opt.Formats, FormatISO) {
		if err := opt.ISO.CheckAssets(); err != nil { // before minutes of assembly
			return nil, fmt.Errorf("build %s: %w", opt.Name, err)
		}
	}
	if err := os.MkdirAll(opt.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("build: output directory: %w", err)
	}
	p := newProgress(opt.Progress, opt.Terminal)
	defer p.done()
	start := time.Now()
	if ts, ok := src.(timedSource); ok {
		ts.setDefaults(modTime, opt.Log)
	}
	b := &builder{opt: opt, p: p, modTime: modTime}
	defer b.cleanup()

	rfs, err := b.initrd(ctx, src)
	if err != nil {
		return nil, err
	}
	if len(rfs.Kernel) == 0 {
		return nil, fmt.Errorf("build %s: the image has no kernel (set kernel.image in the yml)", opt.Name)
	}
	kernelPath, err := b.writeTemp(opt.Name+"-kernel", rfs.Kernel)
	if err != nil {
		return nil, err
	}
	cmdPath, err := b.writeTemp(opt.Name+"-cmdline", []byte(rfs.Cmdline+"\n"))
	if err != nil {
		return nil, err
	}
	m := &Manifest{Name: opt.Name, BuildTime: buildTime, Cmdline: rfs.Cmdline, Images: rfs.Images}
	if m.Images == nil {
		m.Images = []ImageRef{} // "images": [] rather than null
	}
	wantKI := slices.Contains(opt.Formats, FormatKernelInitrd)
	if slices.Contains(opt.Formats, FormatISO) {
		isoOpt := opt.ISO
		isoOpt.Kernel, isoOpt.Initrd, isoOpt.Cmdline, isoOpt.ModTime = kernelPath, b.initrdPath, rfs.Cmdline, modTime
		p.step("iso: writing %s.iso (isolinux + systemd-boot, %s initrd)", opt.Name, human(b.initrdSize))
		isoOpt.TempDir = opt.OutDir
		out := filepath.Join(opt.OutDir, opt.Name+".iso")
		if err := iso.Write(ctx, out, isoOpt); err != nil {
			return nil, fmt.Errorf("build %s: %w", opt.Name, err)
		}
		m.add(FormatISO, out, nil)
	}
	if wantKI {
		b.keep(m, "kernel", kernelPath, opt.Name+"-kernel")
		b.keep(m, "initrd", b.initrdPath, opt.Name+"-initrd.img")
		b.keep(m, "cmdline", cmdPath, opt.Name+"-cmdline")
	}
	if err := b.publish(m); err != nil {
		return nil, err
	}
	p.step("built %s (version %s) in %s: %s", opt.Name, m.Version, time.Since(start).Round(time.Millisecond), strings.Join(m.files(), ", "))
	return m, nil
}

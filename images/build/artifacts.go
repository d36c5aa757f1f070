package build

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/swarmboot/swarmboot/images/build/imageversion"
	"github.com/swarmboot/swarmboot/images/initrd"
	"github.com/swarmboot/swarmboot/pkg/version"
)

// Manifest describes one build; it is written as NAME.manifest.json.
type Manifest struct {
	Name string `json:"name"`
	// Version is the build's version (see version.go), also written to
	// NAME.version and into the image as imageversion.Path.
	Version          string     `json:"version"`
	SwarmbootVersion string     `json:"swarmbootVersion"`
	BuildTime        time.Time  `json:"buildTime"`
	Cmdline          string     `json:"cmdline"`
	Images           []ImageRef `json:"images"`
	Artifacts        []Artifact `json:"artifacts"`
}

// Artifact is one output file.
type Artifact struct {
	Kind   string `json:"kind"` // kernel, initrd, cmdline, iso
	File   string `json:"file"` // base name in the output directory
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// add records the file at path (renamed later to final, when given); sum is
// its sha256 if already known.
func (m *Manifest) add(kind, path string, sum []byte) {
	m.Artifacts = append(m.Artifacts, Artifact{Kind: kind, File: filepath.Base(path), SHA256: hex.EncodeToString(sum)})
}

func (m *Manifest) files() []string {
	var f []string
	for _, a := range m.Artifacts {
		f = append(f, a.File)
	}
	return append(f, VersionFile(m.Name), m.Name+".manifest.json")
}

// builder holds the temporary files of one build.
type builder struct {
	opt        Options
	p          *progress
	modTime    time.Time
	temps      []string          // removed at the end
	renames    map[string]string // temp → final path
	initrdPath string
	initrdSize int64
	initrdSum  []byte
	version    string
}

func (b *builder) cleanup() {
	for _, t := range b.temps {
		os.Remove(t)
	}
}

func (b *builder) createTemp(name string) (*os.File, error) {
	f, err := os.CreateTemp(b.opt.OutDir, "."+name+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	b.temps = append(b.temps, f.Name())
	if err := f.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	return f, nil
}

func (b *builder) writeTemp(name string, data []byte) (string, error) {
	f, err := b.createTemp(name)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("build: %s: %w", name, err)
	}
	return f.Name(), nil
}

// keep marks a temporary file to be renamed to final when the build succeeds.
func (b *builder) keep(m *Manifest, kind, temp, final string) {
	if b.renames == nil {
		b.renames = map[string]string{}
	}
	b.renames[temp] = filepath.Join(b.opt.OutDir, final)
	m.Artifacts = append(m.Artifacts, Artifact{Kind: kind, File: final})
}

// hashingWriter counts and hashes what goes through it.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// initrd streams the source's root filesystem into a temporary initrd file
// (microcode cpio first, when the kernel image has one).
func (b *builder) initrd(ctx context.Context, src Source) (*Rootfs, error) {
	f, err := b.createTemp(b.opt.Name + "-initrd.img")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b.initrdPath = f.Name()
	bw := bufio.NewWriterSize(f, 1<<20)
	hw := &hashingWriter{w: bw, h: sha256.New()}
	w, err := initrd.NewWriter(hw, initrd.Options{ModTime: b.modTime})
	if err != nil {
		return nil, err
	}
	b.p.step("rootfs: assembling %s", b.opt.Name)
	cw := &countingWriter{w: w, p: b.p}
	vh := newVersionHash(cw)
	rfs, err := src.Assemble(ctx, vh)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", b.opt.Name, err)
	}
	if b.version, err = vh.finish(b.opt.Name, rfs); err != nil {
		return nil, fmt.Errorf("build %s: %w", b.opt.Name, err)
	}
	if err := writeVersionEntry(w, b.version); err != nil {
		return nil, fmt.Errorf("build %s: version file: %w", b.opt.Name, err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("build: initrd: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("build: initrd: %w", err)
	}
	b.initrdSize, b.initrdSum = hw.n, hw.h.Sum(nil)
	b.p.step("initrd: %d entries, %s → %s gzip'd", cw.entries, human(w.Uncompressed()), human(hw.n))
	if len(rfs.Ucode) > 0 {
		return rfs, b.prependUcode(rfs.Ucode)
	}
	return rfs, nil
}

// prependUcode puts the kernel image's uncompressed microcode cpio before
// the gzip'd archive, as LinuxKit does (the kernel's early loader wants it
// first and uncompressed).
func (b *builder) prependUcode(ucode []byte) error {
	f, err := b.createTemp(b.opt.Name + "-initrd.img")
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := os.Open(b.initrdPath)
	if err != nil {
		return err
	}
	defer gz.Close()
	if _, err := f.Write(ucode); err != nil {
		return fmt.Errorf("build: initrd: %w", err)
	}
	if _, err := io.Copy(f, gz); err != nil {
		return fmt.Errorf("build: initrd: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("build: initrd: %w", err)
	}
	b.initrdPath, b.initrdSum, b.initrdSize = f.Name(), nil, 0
	return nil
}

// publish hashes the artifacts, renames the kept temporary files to their
// final names, then writes NAME.version and the manifest last.
func (b *builder) publish(m *Manifest) error {
	m.SwarmbootVersion, m.Version = version.Version, b.version
	for i := range m.Artifacts {
		a := &m.Artifacts[i]
		path := filepath.Join(b.opt.OutDir, a.File)
		for temp, final := range b.renames {
			if filepath.Base(final) == a.File {
				path = temp
			}
		}
		if path == b.initrdPath && b.initrdSum != nil {
			a.SHA256, a.Size = hex.EncodeToString(b.initrdSum), b.initrdSize
			continue
		}
		sum, size, err := fileSum(path)
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
		a.SHA256, a.Size = sum, size
	}
	sort.Slice(m.Artifacts, func(i, j int) bool { return m.Artifacts[i].File < m.Artifacts[j].File })
	for temp, final := range b.renames {
		if err := os.Rename(temp, final); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	tmp, err := b.writeTemp(VersionFile(m.Name), imageversion.Line(m.Version))
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(b.opt.OutDir, VersionFile(m.Name))); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err = b.writeTemp(m.Name+".manifest.json", append(data, '\n'))
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.opt.OutDir, m.Name+".manifest.json"))
}

func fileSum(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

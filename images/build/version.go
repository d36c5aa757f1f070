package build

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/swarmboot/swarmboot/images/build/imageversion"
	"github.com/swarmboot/swarmboot/images/rootfs"
)

// A build's version (imageversion: "worker@3f2a9c1d0b7e") is its name and
// a digest of everything that goes into the image, computed while the
// root filesystem streams into the initrd:
//
//   - every rootfs entry as the Source gives it: name, type and mode,
//     owner, size, link target, device numbers and the file's bytes — so
//     the yml as resolved (merged files, image layers, config.json of each
//     container, files[].contents and files[].source, the agent binary and
//     the trust material) is covered by what it produces;
//   - the kernel, the microcode cpio and the command line;
//   - the image references and digests the Source reports (so a new
//     digest of an image is a new version even when its files match).
//
// Timestamps are left out (they come from SOURCE_DATE_EPOCH or the Unix
// epoch and say nothing about what the image runs), and so is the version
// file itself: it is written after the digest, as the initrd's last entry
// (imageversion.Path). The same inputs give the same version.

// versionPrefix starts the digest; bump it when the encoding changes.
const versionPrefix = "swarmboot image version 1\n"

// versionEntry is the version file's name inside the rootfs stream.
var versionEntry = strings.TrimPrefix(imageversion.Path, "/")

// ErrVersionFile is returned when a source writes the image's version
// file itself.
var ErrVersionFile = errors.New("build: the image may not bring its own " + imageversion.Path)

// versionHash digests the entries passed through it to w.
type versionHash struct {
	w rootfs.Writer
	h hash.Hash
}

func newVersionHash(w rootfs.Writer) *versionHash {
	v := &versionHash{w: w, h: sha256.New()}
	v.h.Write([]byte(versionPrefix))
	return v
}

func (v *versionHash) bytes(tag byte, b []byte) {
	var n [binary.MaxVarintLen64 + 1]byte
	n[0] = tag
	v.h.Write(n[:1+binary.PutUvarint(n[1:], uint64(len(b)))])
	v.h.Write(b)
}

func (v *versionHash) ints(xs ...int64) {
	var n [binary.MaxVarintLen64]byte
	for _, x := range xs {
		v.h.Write(n[:binary.PutVarint(n[:], x)])
	}
}

// WriteEntry implements rootfs.Writer.
func (v *versionHash) WriteEntry(h *rootfs.Header, r io.Reader) error {
	if strings.Trim(path.Clean("/"+h.Name), "/") == versionEntry {
		return fmt.Errorf("%w (the builder writes it): remove it from the yml's files or the image", ErrVersionFile)
	}
	v.bytes('E', []byte(h.Name))
	v.ints(int64(h.Mode), int64(h.Uid), int64(h.Gid), h.Size, h.Devmajor, h.Devminor)
	v.bytes('L', []byte(h.Linkname))
	if r != nil {
		r = io.TeeReader(r, v.h) // exactly h.Size bytes: the initrd writer checks
	}
	return v.w.WriteEntry(h, r)
}

// finish adds what the Source returned besides the stream and returns the
// version of the build called name.
func (v *versionHash) finish(name string, rfs *Rootfs) (string, error) {
	v.bytes('K', rfs.Kernel)
	v.bytes('U', rfs.Ucode)
	v.bytes('C', []byte(rfs.Cmdline))
	v.ints(int64(len(rfs.Images)))
	for _, im := range rfs.Images {
		v.bytes('I', []byte(im.Ref))
		v.bytes('D', []byte(im.Digest))
	}
	return imageversion.New(name, v.h.Sum(nil))
}

// writeVersionEntry puts the version file into the image, after the
// digest (the initrd writer adds missing parent directories).
func writeVersionEntry(w rootfs.Writer, version string) error {
	line := imageversion.Line(version)
	h := &rootfs.Header{Name: versionEntry, Mode: 0o644, Size: int64(len(line))}
	return w.WriteEntry(h, strings.NewReader(string(line)))
}

// VersionFile is the name of the file beside the artifacts that holds the
// version of the build called name.
func VersionFile(name string) string { return name + ".version" }

// ReadVersion reads <dir>/<name>.version, the version `swarmboot build`
// wrote for the image called name: "worker@3f2a9c1d0b7e". The file is
// treated as untrusted: a bounded read of one printable line that must be
// a version of that name. Errors name the file and say what to do.
func ReadVersion(dir, name string) (string, error) {
	if err := imageversion.CheckName(name); err != nil {
		return "", fmt.Errorf("build: image version: %w (want the NAME given to `swarmboot build --name NAME`)", err)
	}
	p := filepath.Join(dir, VersionFile(name))
	rebuild := fmt.Sprintf("run `swarmboot build -f FILE.yml -o %s --name %s`", dir, name)
	v, err := imageversion.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("build: no image version for %s: %s does not exist (images built before versions have none): %s", name, p, rebuild)
	}
	if err != nil {
		return "", fmt.Errorf("build: image version: %w: %s", err, rebuild)
	}
	if got, _, _ := imageversion.Parse(v); got != name {
		return "", fmt.Errorf("build: image version: %s holds the version of image %q (%s), not %q: %s", p, got, v, name, rebuild)
	}
	return v, nil
}

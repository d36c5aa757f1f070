package rootfs

import (
	"io"
	"io/fs"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Header describes one entry of the assembled root filesystem. It is what
// Assemble hands to a Writer, in stream order.
//
//   - Name is slash separated and relative ("etc/hosts", "containers/services/sshd/rootfs"):
//     no leading "/", no "." or ".." element, no trailing "/". It is unique within one stream
//     unless a later entry deliberately replaces an earlier one (files: override image content,
//     as in LinuxKit); writers may emit both (the kernel's initramfs unpacker replaces).
//   - Mode carries the type bits of io/fs: 0 (regular file), fs.ModeDir, fs.ModeSymlink,
//     fs.ModeDevice (block), fs.ModeDevice|fs.ModeCharDevice (char), fs.ModeNamedPipe,
//     fs.ModeSocket; plus the permission bits and fs.ModeSetuid/ModeSetgid/ModeSticky.
//   - Size is the number of bytes the reader yields (regular files only; 0 otherwise).
//   - Linkname is the target of a symlink. On a regular-file entry (Mode type bits 0) a
//     non-empty Linkname makes it a HARD LINK to the earlier entry of that Name (Size is 0 and
//     the reader is empty); the target always precedes the link in the stream.
//   - Devmajor/Devminor are set for device nodes only.
//   - ModTime is the same fixed time for every entry (Options.ModTime), so the same inputs
//     give byte-identical outputs.
//
// Every directory is written before anything inside it.
type Header struct {
	Name     string
	Mode     fs.FileMode
	Uid, Gid int
	Size     int64
	Linkname string
	ModTime  time.Time

	Devmajor, Devminor int64
}

// IsHardlink reports whether h is a hard link to the earlier entry h.Linkname.
func (h *Header) IsHardlink() bool { return h.Mode.Type() == 0 && h.Linkname != "" }

// Writer receives the root filesystem entry by entry (images/initrd's cpio
// writer, a tar writer in tests). r yields exactly h.Size bytes; it is only
// valid during the call.
type Writer interface {
	WriteEntry(h *Header, r io.Reader) error
}

// WriterFunc adapts a function to Writer.
type WriterFunc func(h *Header, r io.Reader) error

// WriteEntry calls f.
func (f WriterFunc) WriteEntry(h *Header, r io.Reader) error { return f(h, r) }

// ImageSource is what Assemble needs from the image store: *store.Store
// satisfies it. A missing image is an error that names the image and says how
// to import it (the store's ErrNotFound).
type ImageSource interface {
	Image(ref string, platform string) (v1.Image, error)
}

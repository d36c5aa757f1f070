// Package initrd writes the gzip'd newc cpio initrd the kernel unpacks as
// its initramfs. It consumes the entry stream of images/rootfs (Writer
// implements rootfs.Writer), compresses on every core with pgzip, and is
// deterministic: every entry gets Options.ModTime, inode numbers follow the
// stream order and the gzip header has no name and a zero time.
package initrd

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/pgzip"

	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/pkg/cpio"
)

// Options tune the writer. The zero value is usable.
type Options struct {
	// ModTime is stamped on every entry (default: the Unix epoch), so the
	// same entries give the same bytes whatever times the input carried.
	ModTime time.Time
	// Level is the gzip level (default gzip.DefaultCompression).
	Level int
	// BlockSize is pgzip's block size (default 1 MiB); Concurrency the
	// number of blocks compressed at once (default GOMAXPROCS). The output
	// depends on BlockSize, not on Concurrency.
	BlockSize, Concurrency int
}

// Writer streams entries into a gzip'd newc archive.
type Writer struct {
	opt   Options
	gz    *pgzip.Writer
	buf   *bufio.Writer
	cw    *cpio.Writer
	cnt   *counter
	dirs  map[string]bool
	files int
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewWriter returns a Writer that writes the compressed archive to w.
func NewWriter(w io.Writer, opt Options) (*Writer, error) {
	if opt.Level == 0 {
		opt.Level = gzip.DefaultCompression
	}
	if opt.BlockSize == 0 {
		opt.BlockSize = 1 << 20
	}
	if opt.Concurrency == 0 {
		opt.Concurrency = runtime.GOMAXPROCS(0)
	}
	if opt.ModTime.IsZero() {
		opt.ModTime = time.Unix(0, 0)
	}
	gz, err := pgzip.NewWriterLevel(w, opt.Level)
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	if err := gz.SetConcurrency(opt.BlockSize, opt.Concurrency); err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	gz.ModTime = time.Unix(0, 0) // no time, no name: reproducible
	gz.OS = 3                    // Unix, like gzip(1)
	cnt := &counter{w: gz}
	buf := bufio.NewWriterSize(cnt, 256<<10)
	return &Writer{opt: opt, gz: gz, buf: buf, cw: cpio.NewWriter(buf), cnt: cnt, dirs: map[string]bool{".": true}}, nil
}

var _ rootfs.Writer = (*Writer)(nil)

// WriteEntry adds one entry; r yields h.Size bytes for regular files.
// Parent directories the stream did not give first are added (0755,
// root-owned), because the kernel does not create them. A hard link
// (rootfs.Header.IsHardlink) becomes a relative symlink to its target:
// the data was already streamed under the target's name.
func (w *Writer) WriteEntry(h *rootfs.Header, r io.Reader) error {
	name := strings.Trim(path.Clean("/"+h.Name), "/")
	if name == "" {
		return nil // the root itself
	}
	if err := w.parents(path.Dir(name)); err != nil {
		return err
	}
	ch := &cpio.Header{Name: name, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, Size: h.Size,
		Linkname: h.Linkname, ModTime: w.opt.ModTime, Devmajor: h.Devmajor, Devminor: h.Devminor}
	if h.IsHardlink() {
		target := strings.Trim(path.Clean("/"+h.Linkname), "/")
		ch.Mode = ch.Mode.Perm() | 0o777 | fs.ModeSymlink
		ch.Linkname = relTo(path.Dir(name), target)
		ch.Size = 0
		r = nil
	}
	if err := w.cw.WriteHeader(ch); err != nil {
		return fmt.Errorf("initrd: %s: %w", name, err)
	}
	if ch.Mode.IsDir() {
		w.dirs[name] = true
	}
	if ch.Mode.IsRegular() && ch.Size > 0 {
		w.files++
		n, err := io.Copy(w.cw, r)
		if err != nil {
			return fmt.Errorf("initrd: %s: %w", name, err)
		}
		if n != ch.Size {
			return fmt.Errorf("initrd: %s: got %d bytes, header says %d", name, n, ch.Size)
		}
	}
	return nil
}

func (w *Writer) parents(dir string) error {
	if w.dirs[dir] {
		return nil
	}
	if err := w.parents(path.Dir(dir)); err != nil {
		return err
	}
	w.dirs[dir] = true
	return w.cw.WriteHeader(&cpio.Header{Name: dir, Mode: fs.ModeDir | 0o755, ModTime: w.opt.ModTime})
}

// relTo returns the path of target relative to the directory dir (both
// relative to the archive root).
func relTo(dir, target string) string {
	if dir == "." {
		return target
	}
	d, t := strings.Split(dir, "/"), strings.Split(target, "/")
	i := 0
	for i < len(d) && i < len(t)-1 && d[i] == t[i] {
		i++
	}
	return strings.Repeat("../", len(d)-i) + strings.Join(t[i:], "/")
}

// Uncompressed returns the number of archive bytes written so far.
func (w *Writer) Uncompressed() int64 { return w.cnt.n + int64(w.buf.Buffered()) }

// Close writes the trailer and flushes the compressor. It does not close
// the underlying writer.
func (w *Writer) Close() error {
	if err := w.cw.Close(); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	if err := w.gz.Close(); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	return nil
}

package cpio

import (
	"fmt"
	"io"
	"strings"
)

// Writer writes a newc archive to an underlying io.Writer. Call
// WriteHeader, then Write exactly Size bytes for regular files, and Close
// to add the trailer. Writer does no buffering of its own: wrap the
// destination in a bufio.Writer when it is a file or a compressor.
type Writer struct {
	w       io.Writer
	ino     uint32
	remain  int64 // data bytes still expected for the current entry
	padding int64 // padding after the current entry's data
	closed  bool
	off     int64 // bytes written to w
	err     error
	hdr     [headerSize]byte
}

// NewWriter returns a Writer on w. Inode numbers start at 1 (the trailer
// carries 0) and go up by one per entry.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

var zeros [512]byte

// finish checks the previous entry got all its data and writes its padding.
func (w *Writer) finish() error {
	if w.remain > 0 {
		return fmt.Errorf("%w: %d bytes missing", ErrShortData, w.remain)
	}
	if w.padding > 0 {
		if _, err := w.w.Write(zeros[:w.padding]); err != nil {
			return err
		}
		w.off += w.padding
		w.padding = 0
	}
	return nil
}

// WriteHeader starts a new entry. For symlinks it also writes the target
// as the entry's data. Sizes of directories and devices are ignored.
func (w *Writer) WriteHeader(h *Header) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	mode, err := unixMode(h.Mode)
	if err != nil {
		return err
	}
	name := cleanName(h.Name)
	if name == Trailer {
		return fmt.Errorf("cpio: entry name %q is reserved", name)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("cpio: entry name %q contains NUL", name)
	}
	size := int64(0)
	switch mode & typeMask {
	case typeReg:
		size = h.Size
		if size < 0 || size > 0xffffffff {
			return fmt.Errorf("cpio: %s: size %d does not fit newc's 32 bits", name, size)
		}
	case typeLink:
		size = int64(len(h.Linkname))
	}
	w.ino++
	var rmaj, rmin int64
	if mode&typeMask == typeChr || mode&typeMask == typeBlk {
		rmaj, rmin = h.Devmajor, h.Devminor
	}
	nlink := 1
	if mode&typeMask == typeDir {
		nlink = 2
	}
	if err := w.writeRaw(w.ino, mode, h.Uid, h.Gid, nlink, h.ModTime.Unix(), size, rmaj, rmin, name); err != nil {
		return err
	}
	w.remain, w.padding = size, pad4(size)
	if mode&typeMask == typeLink {
		if _, err := io.WriteString(w, h.Linkname); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) writeRaw(ino, mode uint32, uid, gid, nlink int, mtime, size, rmaj, rmin int64, name string) error {
	if err := w.finish(); err != nil {
		w.err = err
		return err
	}
	b := w.hdr[:]
	copy(b, magic)
	fields := [13]uint64{uint64(ino), uint64(mode), uint64(uint32(uid)), uint64(uint32(gid)), uint64(nlink),
		uint64(uint32(mtime)), uint64(size), 0, 0, uint64(rmaj), uint64(rmin), uint64(len(name) + 1), 0}
	const hex = "0123456789ABCDEF"
	for i, v := range fields {
		off := 6 + 8*i
		for j := 7; j >= 0; j-- {
			b[off+j] = hex[v&0xf]
			v >>= 4
		}
	}
	n := int64(headerSize + len(name) + 1)
	if _, err := w.w.Write(b); err != nil {
		w.err = err
		return err
	}
	if _, err := io.WriteString(w.w, name); err != nil {
		w.err = err
		return err
	}
	if _, err := w.w.Write(zeros[:1+pad4(n)]); err != nil {
		w.err = err
		return err
	}
	w.off += n + pad4(n)
	return nil
}

// Write writes data of the current regular-file entry.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > w.remain {
		return 0, fmt.Errorf("%w (%d bytes left, %d given)", ErrWriteSize, w.remain, len(p))
	}
	n, err := w.w.Write(p)
	w.remain -= int64(n)
	w.off += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Close writes the trailer and pads the archive to a multiple of 512
// bytes, like cpio(1). It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if w.err != nil {
		return w.err
	}
	w.closed = true
	if err := w.writeRaw(0, 0, 0, 0, 1, 0, 0, 0, 0, Trailer); err != nil {
		return err
	}
	if p := (512 - w.off%512) % 512; p > 0 {
		if _, err := w.w.Write(zeros[:p]); err != nil {
			return err
		}
		w.off += p
	}
	return nil
}

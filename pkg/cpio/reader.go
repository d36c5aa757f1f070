package cpio

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"
)

// Reader reads a newc archive entry by entry. It is meant for tests and
// inspection of archives from outside (it validates every field and bounds
// names), and it stops at the trailer.
type Reader struct {
	r       *bufio.Reader
	remain  int64 // unread data of the current entry
	padding int64
	off     int64
	done    bool
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

func (r *Reader) skip(n int64) error {
	m, err := io.CopyN(io.Discard, r.r, n)
	r.off += m
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Next advances to the next entry and returns its header. It returns
// io.EOF after the trailer (or at the end of input between entries).
func (r *Reader) Next() (*Header, error) {
	if r.done {
		return nil, io.EOF
	}
	if err := r.skip(r.remain + r.padding); err != nil {
		return nil, err
	}
	r.remain, r.padding = 0, 0
	var b [headerSize]byte
	n, err := io.ReadFull(r.r, b[:])
	r.off += int64(n)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header at offset %d: %v", ErrFormat, r.off-int64(n), err)
	}
	if string(b[:6]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q at offset %d", ErrFormat, b[:6], r.off-int64(n))
	}
	var f [13]uint64
	for i := range f {
		v, err := strconv.ParseUint(string(b[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: field %d: %v", ErrFormat, i, err)
		}
		f[i] = v
	}
	namesize := int64(f[11])
	if namesize < 1 || namesize > MaxNameSize {
		return nil, fmt.Errorf("%w: name size %d", ErrFormat, namesize)
	}
	name := make([]byte, namesize)
	m, err := io.ReadFull(r.r, name)
	r.off += int64(m)
	if err != nil {
		return nil, fmt.Errorf("%w: name: %v", ErrFormat, io.ErrUnexpectedEOF)
	}
	if name[namesize-1] != 0 {
		return nil, fmt.Errorf("%w: name not NUL-terminated", ErrFormat)
	}
	if err := r.skip(pad4(headerSize + namesize)); err != nil {
		return nil, err
	}
	mode, err := fileMode(uint32(f[1]))
	if err != nil {
		return nil, err
	}
	h := &Header{
		Ino: uint32(f[0]), Mode: mode, Uid: int(f[2]), Gid: int(f[3]), Nlink: uint32(f[4]),
		ModTime: time.Unix(int64(f[5]), 0), Size: int64(f[6]),
		Devmajor: int64(f[9]), Devminor: int64(f[10]), Name: string(name[:namesize-1]),
	}
	if h.Name == Trailer {
		r.done = true
		return nil, io.EOF
	}
	r.remain, r.padding = h.Size, pad4(h.Size)
	if h.Mode&fs.ModeSymlink != 0 {
		if h.Size > MaxNameSize {
			return nil, fmt.Errorf("%w: symlink %s: target of %d bytes", ErrFormat, h.Name, h.Size)
		}
		target := make([]byte, h.Size)
		if _, err := io.ReadFull(r, target); err != nil {
			return nil, fmt.Errorf("%w: symlink %s: %v", ErrFormat, h.Name, io.ErrUnexpectedEOF)
		}
		h.Linkname = string(target)
	}
	return h, nil
}

// Read reads the current entry's data.
func (r *Reader) Read(p []byte) (int, error) {
	if r.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.r.Read(p)
	r.remain -= int64(n)
	r.off += int64(n)
	if err == io.EOF && r.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

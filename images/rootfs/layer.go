package rootfs

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// cleanName turns a tar name into a Header name; ok is false for the root
// itself. Names that climb out of the tree are refused.
func cleanName(name string) (string, bool, error) {
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", false, fmt.Errorf("entry %q leaves the image root", name)
		}
	}
	c := strings.TrimPrefix(path.Clean("/"+name), "/")
	return c, c != "", nil
}

// tarHeader converts a tar header (name already cleaned).
func tarHeader(th *tar.Header, name string) (*Header, error) {
	h := &Header{Name: name, Uid: th.Uid, Gid: th.Gid}
	perm := fs.FileMode(th.Mode).Perm()
	if th.Mode&04000 != 0 {
		perm |= fs.ModeSetuid
	}
	if th.Mode&02000 != 0 {
		perm |= fs.ModeSetgid
	}
	if th.Mode&01000 != 0 {
		perm |= fs.ModeSticky
	}
	switch th.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		h.Mode, h.Size = perm, th.Size
	case tar.TypeDir:
		h.Mode = perm | fs.ModeDir
	case tar.TypeSymlink:
		h.Mode, h.Linkname = perm|fs.ModeSymlink, th.Linkname
	case tar.TypeLink:
		target, ok, err := cleanName(th.Linkname)
		if err != nil || !ok {
			return nil, fmt.Errorf("hard link %q → %q: bad target", th.Name, th.Linkname)
		}
		h.Mode, h.Linkname = perm, target
	case tar.TypeChar:
		h.Mode, h.Devmajor, h.Devminor = perm|fs.ModeDevice|fs.ModeCharDevice, th.Devmajor, th.Devminor
	case tar.TypeBlock:
		h.Mode, h.Devmajor, h.Devminor = perm|fs.ModeDevice, th.Devmajor, th.Devminor
	case tar.TypeFifo:
		h.Mode = perm | fs.ModeNamedPipe
	default:
		return nil, nil // pax/gnu metadata, xattr-only entries: nothing to write
	}
	return h, nil
}

// uncompressed opens a layer's tar stream. gzip'd layers (nearly all) are
// inflated with klauspost/compress, about twice as fast as compress/gzip.
func uncompressed(l v1.Layer) (io.ReadCloser, error) {
	mt, err := l.MediaType()
	if err != nil || (mt != types.DockerLayer && mt != types.OCILayer) {
		return l.Uncompressed()
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(rc, 1<<16)
	if magic, _ := br.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		rc.Close()
		return l.Uncompressed()
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return readCloser{zr, func() error { zr.Close(); return rc.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// forEachEntry reads one layer's tar, calling fn for every entry with a
// usable name; r is valid during the call.
func forEachEntry(ctx context.Context, l v1.Layer, fn func(ord int, th *tar.Header, name string, r io.Reader) error) error {
	rc, err := uncompressed(l)
	if err != nil {
		return err
	}
	rc = newReadAhead(rc)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for ord := 0; ; ord++ {
		th, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name, ok, err := cleanName(th.Name)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := fn(ord, th, name, tr); err != nil {
			return err
		}
	}
}

// readAhead inflates in its own goroutine, up to 16 blocks of 256 KiB ahead
// of the reader, so inflating overlaps with tar parsing and the Writer.
type readAhead struct {
	src    io.ReadCloser
	blocks chan []byte
	errc   chan error
	done   chan struct{}
	cur    []byte
	err    error
}

func newReadAhead(src io.ReadCloser) *readAhead {
	ra := &readAhead{src: src, blocks: make(chan []byte, 16), errc: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(ra.blocks)
		for {
			buf := make([]byte, 256<<10)
			n, err := io.ReadFull(src, buf)
			if n > 0 {
				select {
				case ra.blocks <- buf[:n]:
				case <-ra.done:
					return
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil {
				ra.errc <- err
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		b, ok := <-ra.blocks
		if !ok {
			select {
			case ra.err = <-ra.errc:
			default:
				ra.err = io.EOF
			}
			continue
		}
		ra.cur = b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the goroutine and closes the source.
func (ra *readAhead) Close() error {
	close(ra.done)
	for range ra.blocks { // let the goroutine finish
	}
	return ra.src.Close()
}

// Package cpio reads and writes the "newc" (SVR4, magic 070701) cpio format
// that the Linux kernel unpacks as an initramfs. The writer streams: each
// entry is a header followed by its data, with deterministic inode numbers
// (1, 2, 3… in write order) so the same entries give the same bytes.
//
// Hard links are not written as such: a caller that has one writes a copy
// or a symlink.
package cpio

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// Trailer is the name of the entry that ends an archive.
const Trailer = "TRAILER!!!"

const (
	magic      = "070701"
	headerSize = 110
	// MaxNameSize bounds the name length the reader accepts (PATH_MAX).
	MaxNameSize = 4096
)

// Unix file type and permission bits as stored in the mode field.
const (
	typeMask = 0o170000
	typeSock = 0o140000
	typeLink = 0o120000
	typeReg  = 0o100000
	typeBlk  = 0o060000
	typeDir  = 0o040000
	typeChr  = 0o020000
	typeFifo = 0o010000
	setuid   = 0o4000
	setgid   = 0o2000
	sticky   = 0o1000
)

// Header describes one archive entry.
type Header struct {
	Name     string      // path inside the archive, without a leading "/"
	Mode     fs.FileMode // type bits (fs.ModeDir, fs.ModeSymlink, fs.ModeDevice…) and permissions
	Uid, Gid int
	Size     int64     // bytes of data for regular files; ignored (computed) for symlinks
	Linkname string    // symlink target
	ModTime  time.Time // stored as Unix seconds
	Devmajor int64     // device numbers for character and block devices
	Devminor int64
	Ino      uint32 // set by the reader; the writer assigns its own
	Nlink    uint32 // set by the reader
}

// Errors returned by the reader and the writer.
var (
	ErrFormat    = errors.New("cpio: not a newc archive")
	ErrWriteSize = errors.New("cpio: write beyond the header's size")
	ErrShortData = errors.New("cpio: entry data shorter than the header's size")
	ErrClosed    = errors.New("cpio: writer closed")
)

// unixMode converts fs.FileMode to the mode field of a cpio header.
func unixMode(m fs.FileMode) (uint32, error) {
	u := uint32(m.Perm())
	switch {
	case m&fs.ModeDir != 0:
		u |= typeDir
	case m&fs.ModeSymlink != 0:
		u |= typeLink
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice != 0:
		u |= typeChr
	case m&fs.ModeDevice != 0:
		u |= typeBlk
	case m&fs.ModeNamedPipe != 0:
		u |= typeFifo
	case m&fs.ModeSocket != 0:
		u |= typeSock
	case m&fs.ModeCharDevice != 0:
		u |= typeChr
	case m.Type() == 0:
		u |= typeReg
	default:
		return 0, fmt.Errorf("cpio: unsupported file type %v", m.Type())
	}
	if m&fs.ModeSetuid != 0 {
		u |= setuid
	}
	if m&fs.ModeSetgid != 0 {
		u |= setgid
	}
	if m&fs.ModeSticky != 0 {
		u |= sticky
	}
	return u, nil
}

// fileMode converts a cpio mode field to fs.FileMode.
func fileMode(u uint32) (fs.FileMode, error) {
	m := fs.FileMode(u & 0o777)
	switch u & typeMask {
	case typeReg:
	case typeDir:
		m |= fs.ModeDir
	case typeLink:
		m |= fs.ModeSymlink
	case typeChr:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case typeBlk:
		m |= fs.ModeDevice
	case typeFifo:
		m |= fs.ModeNamedPipe
	case typeSock:
		m |= fs.ModeSocket
	default:
		if u&typeMask == 0 {
			break // the trailer and some old writers leave the type empty
		}
		return 0, fmt.Errorf("%w: file type %o", ErrFormat, u&typeMask)
	}
	if u&setuid != 0 {
		m |= fs.ModeSetuid
	}
	if u&setgid != 0 {
		m |= fs.ModeSetgid
	}
	if u&sticky != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}

// cleanName strips leading "/" and "./" so names are relative, as the
// kernel and cpio -i expect.
func cleanName(name string) string {
	for {
		switch {
		case strings.HasPrefix(name, "/"):
			name = name[1:]
		case strings.HasPrefix(name, "./"):
			name = name[2:]
		default:
			if name == "" {
				return "."
			}
			return name
		}
	}
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

package iso

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"
)

// WriteFAT writes a FAT16 image holding files to out (at its current
// offset 0, which must be empty) and returns its size. Every entry carries
// mtime; the volume ID is fixed, so the same files give the same bytes.
// Each File's Offset is set to where its contents start in the image (a
// multiple of 2048).
func WriteFAT(out *os.File, files []*File, mtime time.Time) (int64, error) {
	l, err := planFAT(files)
	if err != nil {
		return 0, err
	}
	for _, n := range l.order {
		if n.file != nil {
			n.file.Offset, n.file.Size = 0, n.size
			if n.clusters > 0 {
				n.file.Offset = l.dataStart() + int64(n.cluster-2)*l.clusterBytes()
			}
		}
	}
	// boot sector
	bs := make([]byte, fatSector)
	copy(bs, []byte{0xeb, 0x3c, 0x90})
	copy(bs[3:], "SWARMBT ")
	binary.LittleEndian.PutUint16(bs[11:], fatSector)
	bs[13] = byte(l.spc)
	binary.LittleEndian.PutUint16(bs[14:], uint16(l.reserved))
	bs[16] = 2 // FATs
	binary.LittleEndian.PutUint16(bs[17:], fatRootEnts)
	if l.total < 0x10000 {
		binary.LittleEndian.PutUint16(bs[19:], uint16(l.total))
	} else {
		binary.LittleEndian.PutUint32(bs[32:], l.total)
	}
	bs[21] = 0xf8
	binary.LittleEndian.PutUint16(bs[22:], uint16(l.fatSectors))
	binary.LittleEndian.PutUint16(bs[24:], 32) // sectors per track
	binary.LittleEndian.PutUint16(bs[26:], 64) // heads
	bs[36] = 0x80
	bs[38] = 0x29
	binary.LittleEndian.PutUint32(bs[39:], 0x53574254) // fixed volume ID
	copy(bs[43:], "ESP        FAT16   ")
	bs[510], bs[511] = 0x55, 0xaa
	if _, err := out.WriteAt(bs, 0); err != nil {
		return 0, err
	}
	// FATs
	fat := make([]byte, l.fatSectors*fatSector)
	binary.LittleEndian.PutUint16(fat[0:], 0xfff8)
	binary.LittleEndian.PutUint16(fat[2:], 0xffff)
	for _, n := range l.order {
		for i := uint32(0); i < n.clusters; i++ {
			next := n.cluster + i + 1
			if i == n.clusters-1 {
				next = 0xffff
			}
			binary.LittleEndian.PutUint16(fat[2*(n.cluster+i):], uint16(next))
		}
	}
	for i := int64(0); i < 2; i++ {
		if _, err := out.WriteAt(fat, fatSector*(int64(l.reserved)+i*int64(l.fatSectors))); err != nil {
			return 0, err
		}
	}
	// root directory, then the clusters in order
	rootOff := int64(l.reserved+2*l.fatSectors) * fatSector
	if _, err := out.WriteAt(l.listing(l.root, nil, mtime), rootOff); err != nil {
		return 0, err
	}
	var write func(n *fatNode) error
	write = func(parent *fatNode) error {
		for _, n := range parent.children {
			off := l.dataStart() + int64(n.cluster-2)*l.clusterBytes()
			if n.dir {
				if _, err := out.WriteAt(l.listing(n, parent, mtime), off); err != nil {
					return err
				}
				if err := write(n); err != nil {
					return err
				}
				continue
			}
			if n.clusters == 0 {
				continue
			}
			if err := copyAt(out, off, n.file, n.size); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(l.root); err != nil {
		return 0, err
	}
	size := int64(l.total) * fatSector
	return size, out.Truncate(size)
}

// copyAt copies f's contents to out at off (copy_file_range when both are
// files) and checks the size did not change since planning.
func copyAt(out *os.File, off int64, f *File, want int64) error {
	r, size, err := f.open()
	if err != nil {
		return fmt.Errorf("fat: %w", err)
	}
	defer r.Close()
	if size != want {
		return fmt.Errorf("fat: %s changed size while the image was written", f.Path)
	}
	if _, err := out.Seek(off, io.SeekStart); err != nil {
		return err
	}
	n, err := io.Copy(out, r)
	if err != nil {
		return fmt.Errorf("fat: copy %s: %w", f.Path, err)
	}
	if n != want {
		return fmt.Errorf("fat: %s: copied %d of %d bytes", f.Path, n, want)
	}
	return nil
}

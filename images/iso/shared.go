package iso

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
)

// dirRecord is one ISO 9660 directory record found on disk.
type dirRecord struct {
	off  int64 // byte offset of the record in the image
	name string
	dir  bool
	lba  uint32
	size uint32
}

// readDir lists the directory whose extent starts at lba (size bytes).
func readDir(f *os.File, lba, size uint32) ([]dirRecord, error) {
	if size > 1<<20 {
		return nil, fmt.Errorf("iso: directory of %d bytes", size)
	}
	b := make([]byte, size)
	base := int64(lba) * isoSector
	if _, err := f.ReadAt(b, base); err != nil {
		return nil, fmt.Errorf("iso: read directory: %w", err)
	}
	var out []dirRecord
	for i := 0; i < len(b); {
		n := int(b[i])
		if n == 0 { // records do not cross sectors: skip to the next one
			i = (i/isoSector + 1) * isoSector
			continue
		}
		if n < 34 || i+n > len(b) || 33+int(b[i+32]) > n {
			return nil, fmt.Errorf("iso: bad directory record at %d", base+int64(i))
		}
		r := b[i : i+n]
		name := string(r[33 : 33+r[32]])
		name = strings.TrimSuffix(strings.TrimSuffix(name, ";1"), ".")
		out = append(out, dirRecord{off: base + int64(i), name: name, dir: r[25]&2 != 0,
			lba: binary.LittleEndian.Uint32(r[2:]), size: binary.LittleEndian.Uint32(r[10:])})
		i += n
	}
	return out, nil
}

// shareExtents points the /boot records named in files (upper-case ISO
// names) at their contents inside the EFI image /boot/efiboot.img, so
// isolinux and systemd-boot read the same bytes and the image holds them
// once.
func shareExtents(f *os.File, files map[string]*File) error {
	pvd := make([]byte, isoSector)
	if _, err := f.ReadAt(pvd, 16*isoSector); err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	root, err := readDir(f, binary.LittleEndian.Uint32(pvd[156+2:]), binary.LittleEndian.Uint32(pvd[156+10:]))
	if err != nil {
		return err
	}
	var boot []dirRecord
	for _, r := range root {
		if r.dir && r.name == "BOOT" {
			if boot, err = readDir(f, r.lba, r.size); err != nil {
				return err
			}
		}
	}
	var esp *dirRecord
	for i := range boot {
		if boot[i].name == "EFIBOOT.IMG" {
			esp = &boot[i]
		}
	}
	if esp == nil {
		return fmt.Errorf("iso: /boot/efiboot.img not found in the image")
	}
	done := 0
	for _, r := range boot {
		file, ok := files[r.name]
		if !ok {
			continue
		}
		if file.Offset%isoSector != 0 || file.Offset+file.Size > int64(esp.size) || file.Size > 0xffffffff {
			return fmt.Errorf("iso: %s at ESP offset %d cannot be shared", r.name, file.Offset)
		}
		lba := esp.lba + uint32(file.Offset/isoSector)
		if file.Size == 0 {
			lba = 0
		}
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], lba)
		binary.BigEndian.PutUint32(rec[4:], lba)
		binary.LittleEndian.PutUint32(rec[8:], uint32(file.Size))
		binary.BigEndian.PutUint32(rec[12:], uint32(file.Size))
		if _, err := f.WriteAt(rec, r.off+2); err != nil {
			return fmt.Errorf("iso: %w", err)
		}
		done++
	}
	if done != len(files) {
		return fmt.Errorf("iso: found %d of %d shared files in /boot", done, len(files))
	}
	return nil
}

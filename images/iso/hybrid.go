package iso

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"
)

const isoSector = 2048

// PVD timestamp fields (ISO 9660 8.4.26–29): creation, modification,
// expiration, effective. go-diskfs fills them with the current time; we
// overwrite them so the image is reproducible.
var pvdDateOffsets = []int64{813, 830, 847, 864}

func isoDate(t time.Time) []byte {
	t = t.UTC()
	b := fmt.Appendf(nil, "%04d%02d%02d%02d%02d%02d00", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second())
	return append(b, 0) // GMT offset 0
}

func fixDates(f *os.File, t time.Time) error {
	d := isoDate(t)
	for i, off := range pvdDateOffsets {
		b := d
		if i == 2 { // expiration: "not specified"
			b = append([]byte("0000000000000000"), 0)
		}
		if _, err := f.WriteAt(b, 16*isoSector+off); err != nil {
			return fmt.Errorf("iso: %w", err)
		}
	}
	return nil
}

// bootEntries reads the El Torito catalog back: LBA (2048-byte sectors) and
// size in 512-byte sectors of the BIOS and the EFI boot images.
func bootEntries(f *os.File) (biosLBA, efiLBA uint32, err error) {
	brvd := make([]byte, isoSector)
	if _, err := f.ReadAt(brvd, 17*isoSector); err != nil {
		return 0, 0, err
	}
	if string(brvd[1:6]) != "CD001" || brvd[0] != 0 {
		return 0, 0, fmt.Errorf("iso: no boot record at sector 17")
	}
	cat := make([]byte, isoSector)
	if _, err := f.ReadAt(cat, int64(binary.LittleEndian.Uint32(brvd[0x47:]))*isoSector); err != nil {
		return 0, 0, err
	}
	if cat[0] != 1 || cat[0x1e] != 0x55 || cat[0x1f] != 0xaa || cat[0x20] != 0x88 || cat[0x60] != 0x88 {
		return 0, 0, fmt.Errorf("iso: unexpected El Torito catalog layout")
	}
	return binary.LittleEndian.Uint32(cat[0x28:]), binary.LittleEndian.Uint32(cat[0x68:]), nil
}

// chs encodes a 512-byte sector number as MBR cylinder/head/sector with the
// 64 heads × 32 sectors geometry isohybrid uses.
func chs(lba uint32) [3]byte {
	c, h, s := lba/(64*32), (lba/32)%64, lba%32+1
	if c > 1023 {
		return [3]byte{0xfe, 0xff, 0xff}
	}
	return [3]byte{byte(h), byte(s) | byte(c>>2)&0xc0, byte(c)}
}

func partEntry(active bool, typ byte, start, size uint32) []byte {
	e := make([]byte, 16)
	if active {
		e[0] = 0x80
	}
	s, l := chs(start), chs(start+size-1)
	copy(e[1:4], s[:])
	e[4] = typ
	copy(e[5:8], l[:])
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], size)
	return e
}

// makeHybrid does what syslinux's isohybrid does: the isohdpfx.bin boot
// code in the MBR, pointing at isolinux.bin, a partition over the whole
// image (type 0x17, active) and one over the EFI image (type 0xef) so
// firmware finds the ESP when the image is a disk. The file is padded to
// a 1 MiB (64 heads × 32 sectors) boundary.
func makeHybrid(f *os.File, isohdpfx string) error {
	code, err := os.ReadFile(isohdpfx)
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	if len(code) < 432 {
		return fmt.Errorf("iso: %s: %d bytes, want an isohybrid MBR (432+)", isohdpfx, len(code))
	}
	biosLBA, efiLBA, err := bootEntries(f)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	const mib = 1 << 20
	size := (fi.Size() + mib - 1) / mib * mib
	if err := f.Truncate(size); err != nil {
		return err
	}
	espInfo, err := espSize(f, efiLBA)
	if err != nil {
		return err
	}
	mbr := make([]byte, 512)
	copy(mbr, code[:432])
	binary.LittleEndian.PutUint32(mbr[432:], biosLBA*4)
	binary.LittleEndian.PutUint32(mbr[440:], 0x53574254) // disk signature, fixed
	copy(mbr[446:], partEntry(true, 0x17, 0, uint32(size/512)))
	copy(mbr[462:], partEntry(false, 0xef, efiLBA*4, espInfo))
	mbr[510], mbr[511] = 0x55, 0xaa
	_, err = f.WriteAt(mbr, 0)
	return err
}

// espSize reads the FAT image's sector count from its boot sector.
func espSize(f *os.File, lba uint32) (uint32, error) {
	bs := make([]byte, 512)
	if _, err := f.ReadAt(bs, int64(lba)*isoSector); err != nil {
		return 0, err
	}
	if n := binary.LittleEndian.Uint16(bs[19:]); n != 0 {
		return uint32(n), nil
	}
	return binary.LittleEndian.Uint32(bs[32:]), nil
}

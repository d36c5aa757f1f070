package iso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// FAT16 image writer for the EFI system partition. It lays out a fixed set
// of files contiguously (no fragmentation, nothing to update later), so the
// image is written once, in order, and the same files give the same bytes.
// go-diskfs' FAT writer stamps entries with the current time and writes
// cluster by cluster; this one copies each file with one io.Copy.

const (
	fatSector     = 512
	fatRootEnts   = 512
	fatMinCluster = 4085 + 16 // FAT16 needs at least 4085 clusters
	fatMaxCluster = 65524 - 16
)

// File is one file to put on a filesystem image.
type File struct {
	Path   string // absolute slash path inside the image, e.g. "/EFI/BOOT/BOOTX64.EFI"
	Source string // file on disk to copy from (when Data is nil)
	Data   []byte // contents held in memory

	// Set by WriteFAT: where the contents start in the image, and their size.
	Offset, Size int64
}

func (f *File) open() (io.ReadCloser, int64, error) {
	if f.Data != nil {
		return io.NopCloser(bytes.NewReader(f.Data)), int64(len(f.Data)), nil
	}
	fh, err := os.Open(f.Source)
	if err != nil {
		return nil, 0, err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, 0, err
	}
	return fh, fi.Size(), nil
}

type fatNode struct {
	name     string
	dir      bool
	file     *File
	size     int64
	cluster  uint32 // first cluster (0 for empty files and the root)
	clusters uint32
	children []*fatNode
	short    [11]byte
	lfn      bool
}

// fatLayout is the computed geometry of an image.
type fatLayout struct {
	reserved   uint32 // reserved sectors (boot sector + padding)
	spc        uint32 // sectors per cluster
	fatSectors uint32
	clusters   uint32 // data clusters (count in the BPB)
	total      uint32 // total sectors
	root       *fatNode
	order      []*fatNode // nodes in cluster order
}

func (l *fatLayout) clusterBytes() int64 { return int64(l.spc) * fatSector }
func (l *fatLayout) dataStart() int64 {
	return int64(l.reserved+2*l.fatSectors+fatRootEnts*32/fatSector) * fatSector
}

func buildTree(files []*File) (*fatNode, error) {
	root := &fatNode{dir: true}
	for _, f := range files {
		p := strings.Trim(path.Clean("/"+f.Path), "/")
		parts := strings.Split(p, "/")
		n := root
		for i, part := range parts {
			var c *fatNode
			for _, ch := range n.children {
				if strings.EqualFold(ch.name, part) {
					c = ch
				}
			}
			last := i == len(parts)-1
			if c == nil {
				c = &fatNode{name: part, dir: !last}
				n.children = append(n.children, c)
			} else if last || !c.dir {
				return nil, fmt.Errorf("fat: %s given twice or under a file", f.Path)
			}
			if last {
				c.file = f
			}
			n = c
		}
	}
	var walk func(n *fatNode) error
	walk = func(n *fatNode) error {
		sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
		used := map[string]bool{}
		for _, c := range n.children {
			if err := c.setShortName(used); err != nil {
				return err
			}
			if c.dir {
				if err := walk(c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return root, walk(root)
}

// setShortName picks the 8.3 name; names that are not plain upper-case 8.3
// also get a long-name (VFAT) entry.
func (n *fatNode) setShortName(used map[string]bool) error {
	if n.name == "" || len(n.name) > 255 || n.name == "." || n.name == ".." {
		return fmt.Errorf("fat: bad name %q", n.name)
	}
	base, ext := n.name, ""
	if i := strings.LastIndexByte(n.name, '.'); i > 0 {
		base, ext = n.name[:i], n.name[i+1:]
	}
	clean := func(s string, max int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'()-@^_`{}~", r) {
				b.WriteRune(r)
			}
		}
		s = b.String()
		if len(s) > max {
			s = s[:max]
		}
		return s
	}
	sb, se := clean(base, 8), clean(ext, 3)
	n.lfn = sb != base || se != ext || sb == ""
	if n.lfn {
		stem := clean(base, 6)
		if stem == "" {
			stem = "F"
		}
		for i := 1; ; i++ {
			tail := fmt.Sprintf("~%d", i)
			s := stem
			if len(s)+len(tail) > 8 {
				s = s[:8-len(tail)]
			}
			if !used[s+tail+"."+se] {
				sb = s + tail
				break
			}
		}
	}
	if used[sb+"."+se] {
		return fmt.Errorf("fat: two names map to %s.%s", sb, se)
	}
	used[sb+"."+se] = true
	copy(n.short[:], fmt.Sprintf("%-8s%-3s", sb, se))
	return nil
}

// dirEntries is how many 32-byte slots a directory's listing takes.
func (n *fatNode) dirEntries() int {
	c := 1 // the root's volume label
	if n.name != "" {
		c = 2 // . and ..
	}
	for _, ch := range n.children {
		c++
		if ch.lfn {
			c += (len(utf16.Encode([]rune(ch.name))) + 12) / 13
		}
	}
	return c
}

func planFAT(files []*File) (*fatLayout, error) {
	root, err := buildTree(files)
	if err != nil {
		return nil, err
	}
	if root.dirEntries() > fatRootEnts {
		return nil, fmt.Errorf("fat: too many entries in the root directory")
	}
	var nodes []*fatNode
	var collect func(n *fatNode)
	collect = func(n *fatNode) {
		for _, c := range n.children {
			if c.file != nil {
				r, size, err := c.file.open()
				if err == nil {
					r.Close()
				}
				c.size = size
			}
			nodes = append(nodes, c)
			if c.dir {
				collect(c)
			}
		}
	}
	collect(root)
	for _, n := range nodes {
		if n.file != nil && n.size == 0 && n.file.Data == nil {
			if _, err := os.Stat(n.file.Source); err != nil {
				return nil, fmt.Errorf("fat: %w", err)
			}
		}
	}
	for spc := uint32(4); spc <= 64; spc *= 2 {
		l := &fatLayout{spc: spc, root: root, order: nodes}
		cb := l.clusterBytes()
		var need uint32 = 0
		for _, n := range nodes {
			size := n.size
			if n.dir {
				size = int64(n.dirEntries()) * 32
			}
			n.clusters = uint32((size + cb - 1) / cb)
			need += n.clusters
		}
		if need > fatMaxCluster {
			continue
		}
		l.clusters = max(need, fatMinCluster)
		l.fatSectors = ((l.clusters+2)*2 + fatSector - 1) / fatSector
		// Pad the reserved area so the data area, and with clusters of 2 KiB
		// or more every file, starts on a 2048-byte boundary: an ISO 9660
		// directory record can then point into the image (see Write).
		l.reserved = 1
		for (l.reserved+2*l.fatSectors+fatRootEnts*32/fatSector)%4 != 0 {
			l.reserved++
		}
		l.total = uint32(l.dataStart()/fatSector) + l.clusters*spc
		next := uint32(2)
		for _, n := range nodes {
			if n.clusters > 0 {
				n.cluster = next
				next += n.clusters
			}
		}
		return l, nil
	}
	return nil, fmt.Errorf("fat: %d files too large for a FAT16 image", len(files))
}

// fatDate encodes t as FAT date and time (local = UTC, from 1980).
func fatDate(t time.Time) (date, tim uint16) {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tim = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, tim
}

func shortEntry(name [11]byte, attr byte, cluster uint32, size uint32, mtime time.Time) []byte {
	e := make([]byte, 32)
	copy(e, name[:])
	e[11] = attr
	d, t := fatDate(mtime)
	binary.LittleEndian.PutUint16(e[14:], t)
	binary.LittleEndian.PutUint16(e[16:], d)
	binary.LittleEndian.PutUint16(e[18:], d)
	binary.LittleEndian.PutUint16(e[22:], t)
	binary.LittleEndian.PutUint16(e[24:], d)
	binary.LittleEndian.PutUint16(e[26:], uint16(cluster))
	binary.LittleEndian.PutUint32(e[28:], size)
	return e
}

func lfnEntries(name string, short [11]byte) []byte {
	var sum byte
	for _, c := range short {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	if len(u)%13 != 0 {
		u = append(u, 0)
	}
	for len(u)%13 != 0 {
		u = append(u, 0xffff)
	}
	out := make([]byte, 0, n*32)
	for i := n; i >= 1; i-- {
		e := make([]byte, 32)
		e[0] = byte(i)
		if i == n {
			e[0] |= 0x40
		}
		e[11], e[13] = 0x0f, sum
		chunk := u[(i-1)*13 : i*13]
		offs := []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}
		for j, o := range offs {
			binary.LittleEndian.PutUint16(e[o:], chunk[j])
		}
		out = append(out, e...)
	}
	return out
}

func (l *fatLayout) listing(n, parent *fatNode, mtime time.Time) []byte {
	var b []byte
	if n != l.root {
		var dot, dotdot [11]byte
		copy(dot[:], ".          ")
		copy(dotdot[:], "..         ")
		b = append(b, shortEntry(dot, 0x10, n.cluster, 0, mtime)...)
		b = append(b, shortEntry(dotdot, 0x10, parent.cluster, 0, mtime)...)
	} else {
		var label [11]byte
		copy(label[:], "ESP        ")
		b = append(b, shortEntry(label, 0x08, 0, 0, mtime)...)
	}
	for _, c := range n.children {
		if c.lfn {
			b = append(b, lfnEntries(c.name, c.short)...)
		}
		attr, size := byte(0x20), uint32(c.size)
		if c.dir {
			attr, size = 0x10, 0
		}
		b = append(b, shortEntry(c.short, attr, c.cluster, size, mtime)...)
	}
	return b
}

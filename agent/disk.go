package agent

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// Disk inspects the storage behind a directory (Docker's data dir). The
// zero value reads the running system.
type Disk struct {
	MountInfo string    // default /proc/self/mountinfo
	ProcStat  string    // default /proc/stat (boot time)
	SysBlock  string    // default /sys/dev/block
	BootTime  time.Time // overrides ProcStat when set (tests)
}

// mount is one line of mountinfo.
type mount struct {
	major, minor int
	point        string
	fstype       string
	source       string
}

// unescape undoes mountinfo's octal escapes (\040 for space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseMountInfo reads the mounts from a mountinfo file's content.
func parseMountInfo(r io.Reader) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" && i >= 6 {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+3 {
			continue
		}
		var m mount
		if _, err := fmt.Sscanf(f[2], "%d:%d", &m.major, &m.minor); err != nil {
			continue
		}
		m.point = unescape(f[4])
		m.fstype = f[sep+1]
		m.source = unescape(f[sep+2])
		out = append(out, m)
	}
	return out, sc.Err()
}

// backing returns the mount that holds path (the last, longest match:
// later mounts hide earlier ones).
func backing(mounts []mount, path string) (mount, bool) {
	var best mount
	found := false
	for _, m := range mounts {
		if m.point == path || m.point == "/" || strings.HasPrefix(path, strings.TrimSuffix(m.point, "/")+"/") {
			if !found || len(m.point) >= len(best.point) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// ramFS are filesystem types whose data lives in RAM.
var ramFS = map[string]bool{"tmpfs": true, "ramfs": true, "rootfs": true, "devtmpfs": true}

// Report inspects path. dockerRoot and driver come from docker info ("" when
// Docker is not reachable yet).
func (d *Disk) Report(path, dockerRoot, driver string) api.DiskReport {
	r := api.DiskReport{Path: path, DockerRootDir: dockerRoot, StorageDriver: driver, Formatted: api.FormattedUnknown}
	problem := func(format string, a ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, a...)) }
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		problem("%s: %v", path, err)
		return r
	}
	mi := d.MountInfo
	if mi == "" {
		mi = "/proc/self/mountinfo"
	}
	f, err := os.Open(mi)
	if err != nil {
		problem("mountinfo: %v", err)
		return r
	}
	mounts, err := parseMountInfo(f)
	f.Close()
	if err != nil {
		problem("mountinfo: %v", err)
	}
	m, ok := backing(mounts, real)
	if !ok {
		problem("no mount holds %s", real)
		return r
	}
	r.MountPoint, r.Device, r.FSType = m.point, m.source, m.fstype
	sys := d.SysBlock
	if sys == "" {
		sys = "/sys/dev/block"
	}
	if m.major != 0 {
		if _, err := os.Stat(filepath.Join(sys, fmt.Sprintf("%d:%d", m.major, m.minor))); err == nil {
			r.BlockDevice = true
		}
	}
	r.Persistent = r.BlockDevice && !ramFS[m.fstype]
	if !r.Persistent {
		problem("%s is on %s (%s), not a disk: Docker's data is in RAM and is lost at reboot (did the LinuxKit format/mount onboot step fail? see /run/log/onboot)", path, m.fstype, m.source)
	}
	r.BootTime = d.bootTime()
	if r.BlockDevice && strings.HasPrefix(m.fstype, "ext") {
		if sb, err := readExtSuperblock(devicePath(sys, m)); err != nil {
			problem("superblock of %s: %v", m.source, err)
		} else {
			r.UUID, r.Label, r.MkfsTime = sb.uuid, sb.label, sb.mkfs
			switch {
			case sb.mkfs.IsZero() || r.BootTime.IsZero():
			case !sb.mkfs.Before(r.BootTime):
				r.Formatted = api.FormattedThisBoot
			default:
				r.Formatted = api.FormattedPreExisting
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(real, &st); err == nil {
		bs := uint64(st.Bsize)
		r.SizeBytes, r.FreeBytes, r.Inodes, r.InodesFree = st.Blocks*bs, st.Bavail*bs, st.Files, st.Ffree
	} else {
		problem("statfs %s: %v", real, err)
	}
	if err := probe(real); err != nil {
		r.ProbeError = err.Error()
		problem("write probe on %s failed: %v", real, err)
	} else {
		r.ProbeOK = true
	}
	if dockerRoot != "" {
		if _, err := os.Stat(filepath.Join(dockerRoot, "swarm", "state.json")); err == nil {
			r.SwarmStateOnDisk = true
		}
		if dr, err := filepath.EvalSymlinks(dockerRoot); err == nil {
			if dm, ok := backing(mounts, dr); ok && dm.point != m.point {
				problem("docker's root dir %s is on %s, not on %s", dockerRoot, dm.point, m.point)
			}
		}
	}
	return r
}

// devicePath finds the device node of m: its source when that is a block
// device, else /dev/<DEVNAME> from sysfs.
func devicePath(sys string, m mount) string {
	if fi, err := os.Stat(m.source); err == nil && fi.Mode()&os.ModeDevice != 0 {
		return m.source
	}
	b, err := os.ReadFile(filepath.Join(sys, fmt.Sprintf("%d:%d", m.major, m.minor), "uevent"))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				return "/dev/" + name
			}
		}
	}
	return m.source
}

func (d *Disk) bootTime() time.Time {
	if !d.BootTime.IsZero() {
		return d.BootTime
	}
	p := d.ProcStat
	if p == "" {
		p = "/proc/stat"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return time.Time{}
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}

type extSB struct {
	uuid, label string
	mkfs        time.Time
}

// readExtSuperblock reads the ext2/3/4 superblock (1024 bytes at 1024).
func readExtSuperblock(dev string) (extSB, error) {
	f, err := os.Open(dev)
	if err != nil {
		return extSB{}, err
	}
	defer f.Close()
	b := make([]byte, 1024)
	if _, err := f.ReadAt(b, 1024); err != nil {
		return extSB{}, err
	}
	return parseExtSuperblock(b)
}

func parseExtSuperblock(b []byte) (extSB, error) {
	if len(b) < 0x278 || binary.LittleEndian.Uint16(b[0x38:]) != 0xEF53 {
		return extSB{}, errors.New("not an ext2/3/4 superblock")
	}
	var sb extSB
	u := b[0x68:0x78]
	if !bytes.Equal(u, make([]byte, 16)) {
		h := hex.EncodeToString(u)
		sb.uuid = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	sb.label = strings.TrimRight(string(b[0x78:0x88]), "\x00")
	secs := int64(binary.LittleEndian.Uint32(b[0x108:])) | int64(b[0x276])<<32
	if secs != 0 {
		sb.mkfs = time.Unix(secs, 0)
	}
	return sb, nil
}

// probe writes, fsyncs, reads back and deletes a small file in dir.
func probe(dir string) error {
	data := make([]byte, 4096)
	rand.Read(data)
	name := filepath.Join(dir, fmt.Sprintf(".swarmboot-probe-%d", os.Getpid()))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(name)
	if err := writeSync(f, data); err != nil {
		return err
	}
	back, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if !bytes.Equal(back, data) {
		return errors.New("read back differs from what was written")
	}
	return os.Remove(name)
}

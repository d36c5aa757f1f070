package dhcp

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// record is one line of the lease file: the full state of one address.
type record struct {
	IP      string    `json:"ip"`
	MAC     string    `json:"mac,omitempty"`
	State   string    `json:"state"` // bound, declined, free
	Expires time.Time `json:"expires"`
}

// journal is the lease file: JSON lines appended and fsync'd with group
// commit (concurrent appends share one fsync), compacted through a
// temporary file, fsync and rename so that a crash leaves either the old or
// the new file, never a mix.
type journal struct {
	path string

	mu      sync.Mutex // guards pending, seq
	pending []byte
	seq     uint64

	fmu      sync.Mutex // guards f, durable, written; held while writing
	f        *os.File
	lock     *os.File // flock'd path+".lock": one server per lease file
	durable  uint64
	written  int // records in the file since the last compaction
	snapshot func() []record
	live     func() int
}

// compactAfter is how many records the file may hold before it is
// rewritten (when it is also more than four times the live leases).
var compactAfter = 4096

// lockLeaseFile makes sure no other process uses the lease file.
func lockLeaseFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("lease file directory: %w", err)
	}
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease file lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lease file %s is in use by another process (is another swarmboot serve running?): stop it or use another lease file: %w", path, err)
	}
	return f, nil
}

// load reads the lease file; a missing file is empty. Lines that do not
// parse (a torn last write) are skipped and logged.
func loadJournal(path string, log *slog.Logger) ([]record, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open lease file: %w", err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.IP == "" {
			log.Warn("lease file: skipping unreadable line", "file", fmt.Sprintf("%s:%d", path, line))
			continue
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read lease file %s:%d: %w", path, line, err)
	}
	return recs, nil
}

// openJournal compacts the file to snap() and opens it for appending.
func openJournal(path string, lock *os.File, snap func() []record, live func() int) (*journal, error) {
	j := &journal{path: path, lock: lock, snapshot: snap, live: live}
	j.fmu.Lock()
	defer j.fmu.Unlock()
	if err := j.compactLocked(); err != nil {
		return nil, err
	}
	return j, nil
}

// compactLocked rewrites the file from the snapshot; fmu is held.
func (j *journal) compactLocked() error {
	recs := j.snapshot()
	j.mu.Lock()
	j.pending = nil // every pending record is already in the snapshot
	upto := j.seq
	j.mu.Unlock()

	dir := filepath.Dir(j.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(j.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write lease file: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			tmp.Close()
			return fmt.Errorf("write lease file: %w", err)
		}
	}
	err = w.Flush()
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write lease file %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		return fmt.Errorf("replace lease file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open lease file: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f = f
	j.written = len(recs)
	j.durable = upto
	return nil
}

// add appends r and returns once it is on disk.
func (j *journal) add(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.pending = append(append(j.pending, b...), '\n')
	j.seq++
	mine := j.seq
	j.mu.Unlock()

	j.fmu.Lock()
	defer j.fmu.Unlock()
	if j.durable >= mine {
		return nil // a concurrent flush took ours along
	}
	j.mu.Lock()
	data, upto, n := j.pending, j.seq, int(j.seq-j.durable)
	j.pending = nil
	j.mu.Unlock()
	if _, err := j.f.Write(data); err != nil {
		return fmt.Errorf("append lease file %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync lease file %s: %w", j.path, err)
	}
	j.durable = upto
	j.written += n
	if j.written > compactAfter && j.written > 4*j.live() {
		return j.compactLocked()
	}
	return nil
}

func (j *journal) close() error {
	j.fmu.Lock()
	defer j.fmu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	j.lock.Close() // releases the flock
	return err
}

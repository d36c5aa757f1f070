// Package store is the appliance's state: one bbolt file under the data dir
// holding the VMs swarmboot created, one-time enrollment tokens (hashed
// only), and per-machine events. vCenter stays the truth for what exists;
// the store maps it to our records.
//
// All access goes through transactions:
//
//	s, err := store.Open(store.DefaultPath(dataDir))
//	err = s.Update(func(tx *store.Tx) error { return tx.PutVM(vm) })
//
// Other files of this package add their own buckets with tx.bucket(name)
// (created on first write; nil in a read transaction when absent).
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this code reads and writes.
const SchemaVersion = 1

// FileName is the store's file name inside the data dir.
const FileName = "swarmboot.db"

// Sentinel errors.
var (
	ErrNotFound     = errors.New("store: not found")
	ErrTokenSpent   = errors.New("store: token already spent")
	ErrTokenExpired = errors.New("store: token expired")
)

var (
	bucketMeta = "meta"
	keySchema  = []byte("schema")
)

// Store is an open state file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

// Tx is one transaction; it is valid only inside the function given to
// Update or View.
type Tx struct {
	btx *bolt.Tx
}

// DefaultPath is the store file inside dataDir.
func DefaultPath(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Open opens (creating when missing) the store file at path and checks its
// schema version.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: in use by another swarmboot process; stop it or use another --data-dir", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	err = db.Update(func(btx *bolt.Tx) error {
		b, err := btx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		v := b.Get(keySchema)
		if v == nil {
			return b.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
		}
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return fmt.Errorf("schema version %q is not a number: the file is not a swarmboot store", v)
		}
		if n > SchemaVersion {
			return fmt.Errorf("schema version %d is newer than this swarmboot understands (%d): upgrade swarmboot", n, SchemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close releases the file.
func (s *Store) Close() error { return s.db.Close() }

// Update runs fn in a read-write transaction; an error from fn rolls it back.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{btx: btx}) })
}

// Batch is Update for many concurrent callers: their functions share one
// transaction (one disk sync). fn may run more than once, so it must be
// idempotent; it still commits before Batch returns.
func (s *Store) Batch(fn func(*Tx) error) error {
	return s.db.Batch(func(btx *bolt.Tx) error { return fn(&Tx{btx: btx}) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(btx *bolt.Tx) error { return fn(&Tx{btx: btx}) })
}

// Schema returns the schema version recorded in the file.
func (tx *Tx) Schema() int {
	b := tx.btx.Bucket([]byte(bucketMeta))
	if b == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(b.Get(keySchema)))
	return n
}

// bucket returns the named top-level bucket, creating it in a writable
// transaction. In a read-only transaction a missing bucket is nil.
func (tx *Tx) bucket(name string) (*bolt.Bucket, error) {
	if b := tx.btx.Bucket([]byte(name)); b != nil {
		return b, nil
	}
	if !tx.btx.Writable() {
		return nil, nil
	}
	return tx.btx.CreateBucket([]byte(name))
}

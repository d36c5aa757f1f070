// Package store keeps swarmboot's local OCI image store: an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) under <data-dir>/images, with
// the same convention as LinuxKit's cache — every stored image or index is a
// descriptor in index.json whose "org.opencontainers.image.ref.name"
// annotation holds the fully qualified reference (docker.io/linuxkit/init:v1.2.0).
//
// Images get in by Import (an OCI archive or a `docker save` tarball, for
// air-gapped sites), by Pull (a registry, only when asked) or by Write (test
// fixtures). Builds read them with Image and never touch the network; a
// missing image is an ErrNotFound naming the image and the command that
// imports it.
//
// Writers take an exclusive file lock (index.lock) for the whole operation;
// index.json and every blob are written to a temporary file and renamed, so a
// crash leaves either the old or the new state. Readers take no lock.
package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// AnnotationRefName is the OCI annotation LinuxKit's cache (and this store)
// uses to name an index.json entry.
const AnnotationRefName = "org.opencontainers.image.ref.name"

// DefaultPlatform is the platform picked from a multi-platform index when
// none is asked for.
const DefaultPlatform = "linux/amd64"

// Store is an OCI image layout on disk. It is safe for concurrent use by
// several goroutines and several processes.
type Store struct {
	dir string

	// Log receives debug and info messages; nil discards them.
	Log *slog.Logger
}

// Open opens (creating if needed) the OCI image layout at dir.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open image store: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", dir, err)
	}
	s := &Store{dir: abs}
	if err := os.MkdirAll(s.blobDir(), 0o755); err != nil {
		return nil, fmt.Errorf("open image store %s: %w", dir, err)
	}
	layoutFile := filepath.Join(abs, "oci-layout")
	if _, err := os.Stat(layoutFile); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(layoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n")); err != nil {
			return nil, fmt.Errorf("open image store %s: %w", dir, err)
		}
	}
	if _, err := os.Stat(s.indexPath()); errors.Is(err, os.ErrNotExist) {
		err := s.locked(func() error {
			if _, err := os.Stat(s.indexPath()); err == nil {
				return nil
			}
			return s.writeIndexFile(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex})
		})
		if err != nil {
			return nil, fmt.Errorf("open image store %s: %w", dir, err)
		}
	}
	if _, err := s.readIndex(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is the directory of the OCI layout.
func (s *Store) Dir() string { return s.dir }

func (s *Store) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Store) indexPath() string { return filepath.Join(s.dir, "index.json") }
func (s *Store) blobDir() string   { return filepath.Join(s.dir, "blobs", "sha256") }
func (s *Store) tmpDir() string    { return filepath.Join(s.dir, "tmp") }

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

// locked runs fn holding the store's exclusive lock (flock on index.lock).
// Staging left behind by a crashed writer is removed first: only a lock
// holder creates it.
func (s *Store) locked(fn func() error) error {
	f, err := os.OpenFile(filepath.Join(s.dir, "index.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lock image store: %w", err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock image store %s: %w", s.dir, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN) //nolint:errcheck // closing releases it too
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return fmt.Errorf("clean image store staging: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(s.dir, ".index.json.tmp-*"))
	for _, f := range stale {
		os.Remove(f)
	}
	return fn()
}

// readIndex reads index.json.
func (s *Store) readIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(s.indexPath())
	if err != nil {
		return nil, fmt.Errorf("read image store index: %w", err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("image store index %s is corrupt (%v): move it away and re-import the images", s.indexPath(), err)
	}
	return im, nil
}

// writeIndexFile replaces index.json atomically. Entries are sorted by name so
// the file does not depend on the order of operations.
func (s *Store) writeIndexFile(im *v1.IndexManifest) error {
	sort.SliceStable(im.Manifests, func(i, j int) bool {
		return im.Manifests[i].Annotations[AnnotationRefName] < im.Manifests[j].Annotations[AnnotationRefName]
	})
	if im.Manifests == nil {
		im.Manifests = []v1.Descriptor{}
	}
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.indexPath(), append(b, '\n'))
}

// setRef points name at desc in index.json, replacing an older entry of
// the same name. Callers hold the lock and have written every blob.
func (s *Store) setRef(name string, desc v1.Descriptor) error {
	return s.setRefs([]namedDesc{{name, desc}})
}

// setRefs names several images in one index.json update.
func (s *Store) setRefs(nds []namedDesc) error {
	im, err := s.readIndex()
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, nd := range nds {
		names[nd.name] = true
	}
	out := im.Manifests[:0]
	for _, d := range im.Manifests {
		if !names[d.Annotations[AnnotationRefName]] {
			out = append(out, d)
		}
	}
	seen := map[string]bool{}
	for i := len(nds) - 1; i >= 0; i-- { // the last one of a name wins
		nd := nds[i]
		if seen[nd.name] {
			continue
		}
		seen[nd.name] = true
		desc := nd.desc
		desc.Annotations = map[string]string{AnnotationRefName: nd.name}
		out = append(out, desc)
	}
	im.Manifests = out
	return s.writeIndexFile(im)
}

// writeFileAtomic writes b to a temporary file next to path, syncs it and
// renames it into place.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := syncFile(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// noSync turns fsync off; only FuzzImport sets it (before any store is
// used), to run thousands of imports a second.
var noSync atomic.Bool

// syncFile flushes f to stable storage before it is renamed into place.
func syncFile(f *os.File) error {
	if noSync.Load() {
		return nil
	}
	return f.Sync()
}

// readBlob returns the content of a stored blob.
func (s *Store) readBlob(h v1.Hash) ([]byte, error) {
	return os.ReadFile(s.blobPath(h))
}

func (s *Store) hasBlob(h v1.Hash) bool {
	fi, err := os.Stat(s.blobPath(h))
	return err == nil && fi.Mode().IsRegular()
}

// putBlob stores the content of r under h: it is written to a temporary
// file, its digest checked, then renamed. An existing blob is kept.
func (s *Store) putBlob(h v1.Hash, r io.Reader) error {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return fmt.Errorf("unsupported digest %s", h)
	}
	if s.hasBlob(h) {
		return nil
	}
	f, err := os.CreateTemp(s.blobDir(), ".tmp-"+h.Hex[:12]+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	got, _, err := v1.SHA256(io.TeeReader(r, f))
	if err != nil {
		f.Close()
		return err
	}
	if got != h {
		f.Close()
		return fmt.Errorf("blob %s: content hashes to %s (corrupt or truncated)", h, got)
	}
	if err := syncFile(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), s.blobPath(h))
}

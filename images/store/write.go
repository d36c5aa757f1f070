package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Write stores img under ref, replacing what ref named before. The test
// fixtures (images/imagetest) use it; import and pull use the same path.
func (s *Store) Write(ref string, img v1.Image) error {
	r, err := parseRef(ref)
	if err != nil {
		return err
	}
	return s.locked(func() error {
		desc, err := s.writeImage(img, "")
		if err != nil {
			return fmt.Errorf("write image %s: %w", r.name, err)
		}
		if err := s.setRef(r.name, *desc); err != nil {
			return fmt.Errorf("write image %s: %w", r.name, err)
		}
		s.log().Info("image stored", "image", r.name, "digest", desc.Digest.String())
		return nil
	})
}

// writeImage stores the blobs of img (layers first, manifest last) and
// returns its descriptor with the platform of its config. When stage is not
// empty, blobs already verified in stage/blobs/sha256 are moved rather than
// copied. Callers hold the lock.
func (s *Store) writeImage(img v1.Image, stage string) (*v1.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers: %w", err)
	}
	var g errgroup.Group
	g.SetLimit(4)
	for _, l := range layers {
		g.Go(func() error {
			h, err := l.Digest()
			if err != nil {
				return fmt.Errorf("layer digest: %w", err)
			}
			if s.hasBlob(h) || s.moveStaged(h, stage) {
				return nil
			}
			rc, err := l.Compressed()
			if err != nil {
				return fmt.Errorf("layer %s: %w", h, err)
			}
			defer rc.Close()
			if err := s.putBlob(h, rc); err != nil {
				return fmt.Errorf("layer %s: %w", h, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("config digest: %w", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := s.putBlob(cfgName, bytes.NewReader(cfg)); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return nil, fmt.Errorf("manifest descriptor: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	if err := s.putBlob(desc.Digest, bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" {
		desc.Platform = cf.Platform()
	}
	// go-containerregistry fills artifactType with the config media type;
	// for a plain image the field stays empty, as in LinuxKit's cache.
	if desc.ArtifactType == string(types.OCIConfigJSON) || desc.ArtifactType == string(types.DockerConfigJSON) {
		desc.ArtifactType = ""
	}
	desc.Annotations = nil
	return desc, nil
}

// moveStaged moves blob h from a verified staging layout into the store.
func (s *Store) moveStaged(h v1.Hash, stage string) bool {
	if stage == "" {
		return false
	}
	return os.Rename(filepath.Join(stage, "blobs", h.Algorithm, h.Hex), s.blobPath(h)) == nil
}

// writeIndex stores idx with the images for want (every platform when want
// is nil); children for other platforms stay listed in the index but their
// blobs are not stored, as LinuxKit's cache does. It fails when idx has no
// image for want.
func (s *Store) writeIndex(idx v1.ImageIndex, want *v1.Platform, stage string) (*v1.Descriptor, error) {
	n, err := s.writeIndexChildren(idx, want, stage)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		var have []string
		if m, err := idx.IndexManifest(); err == nil {
			for _, d := range m.Manifests {
				if d.MediaType.IsImage() && !isAttestation(d) {
					have = append(have, platformString(d.Platform))
				}
			}
		}
		return nil, fmt.Errorf("%w: no %s image in the index (it has %s); choose one with --platform",
			errNoPlatform, platformString(want), strings.Join(have, ", "))
	}
	desc, err := partial.Descriptor(idx)
	if err != nil {
		return nil, fmt.Errorf("index descriptor: %w", err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	if err := s.putBlob(desc.Digest, bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	desc.Annotations = nil
	desc.Platform = nil
	return desc, nil
}

var errNoPlatform = errors.New("platform not found")

func (s *Store) writeIndexChildren(idx v1.ImageIndex, want *v1.Platform, stage string) (int, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return 0, fmt.Errorf("read index: %w", err)
	}
	n := 0
	for _, d := range m.Manifests {
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return n, fmt.Errorf("index %s: %w", d.Digest, err)
			}
			k, err := s.writeIndexChildren(child, want, stage)
			if err != nil {
				return n, err
			}
			if k > 0 {
				raw, err := child.RawManifest()
				if err != nil {
					return n, err
				}
				if err := s.putBlob(d.Digest, bytes.NewReader(raw)); err != nil {
					return n, err
				}
			}
			n += k
		case d.MediaType.IsImage():
			if isAttestation(d) || (want != nil && !platformMatch(*want, d.Platform)) {
				continue
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return n, fmt.Errorf("image %s: %w", d.Digest, err)
			}
			if _, err := s.writeImage(img, stage); err != nil {
				return n, fmt.Errorf("%s image %s: %w", platformString(d.Platform), d.Digest, err)
			}
			n++
		}
	}
	return n, nil
}

// Remove deletes ref from the store and every blob no other image uses.
func (s *Store) Remove(ref string) error {
	r, err := parseRef(ref)
	if err != nil {
		return err
	}
	return s.locked(func() error {
		im, err := s.readIndex()
		if err != nil {
			return err
		}
		d := s.find(im, r)
		if d == nil {
			return &NotFoundError{Ref: r.name}
		}
		name := d.Annotations[AnnotationRefName]
		out := im.Manifests[:0]
		for _, m := range im.Manifests {
			if m.Annotations[AnnotationRefName] != name {
				out = append(out, m)
			}
		}
		im.Manifests = out
		if err := s.writeIndexFile(im); err != nil {
			return err
		}
		s.log().Info("image removed", "image", name)
		return s.gc(im)
	})
}

// gc deletes blobs that no entry of im reaches. Callers hold the lock.
func (s *Store) gc(im *v1.IndexManifest) error {
	keep := map[string]bool{}
	for _, d := range im.Manifests {
		if err := s.mark(d, keep); err != nil {
			return fmt.Errorf("image store gc: %w", err)
		}
	}
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(s.blobDir(), e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// mark records the blobs d reaches; absent children are skipped.
func (s *Store) mark(d v1.Descriptor, keep map[string]bool) error {
	if d.Digest.Algorithm != "sha256" || !s.hasBlob(d.Digest) {
		return nil
	}
	keep[d.Digest.Hex] = true
	b, err := s.readBlob(d.Digest)
	if err != nil {
		return err
	}
	switch {
	case d.MediaType.IsIndex():
		m, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("index %s: %w", d.Digest, err)
		}
		for _, c := range m.Manifests {
			if err := s.mark(c, keep); err != nil {
				return err
			}
		}
	case d.MediaType.IsImage():
		m, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		keep[m.Config.Digest.Hex] = true
		for _, l := range m.Layers {
			keep[l.Digest.Hex] = true
		}
	}
	return nil
}

package store

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pull fetches ref from its registry into the store: an index keeps every
// platform listed but stores only the images for platform ("" is
// linux/amd64, "all" every platform); a single image must match platform.
// Credentials come from the Docker config (~/.docker/config.json). Only
// `swarmboot image pull` and `build --pull` call it: builds are offline.
func (s *Store) Pull(ctx context.Context, ref, platform string) error {
	r, err := parseRef(ref)
	if err != nil {
		return err
	}
	var want *v1.Platform
	if platform != "all" {
		p, err := parsePlatform(platform)
		if err != nil {
			return err
		}
		want = &p
	}
	rr, err := r.remoteRef()
	if err != nil {
		return fmt.Errorf("pull %s: %w", r.name, err)
	}
	desc, err := remote.Get(rr, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return fmt.Errorf("pull %s: %w (if this site has no registry access, import the image with `swarmboot image import FILE`)", r.name, err)
	}
	return s.locked(func() error {
		err := s.pullLocked(r, desc, want)
		if err != nil {
			// Drop the blobs of a pull that failed half-way.
			if im, ierr := s.readIndex(); ierr == nil {
				s.gc(im) //nolint:errcheck // best effort; the pull error matters
			}
		}
		return err
	})
}

// pullLocked stores what desc describes under r. Callers hold the lock.
func (s *Store) pullLocked(r imageRef, desc *remote.Descriptor, want *v1.Platform) error {
	var stored *v1.Descriptor
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return fmt.Errorf("pull %s: %w", r.name, err)
		}
		if stored, err = s.writeIndex(idx, want, ""); err != nil {
			return fmt.Errorf("pull %s: %w", r.name, err)
		}
	} else {
		img, err := desc.Image()
		if err == nil {
			err = checkPlatform(img, want)
		}
		if err == nil {
			stored, err = s.writeImage(img, "")
		}
		if err != nil {
			return fmt.Errorf("pull %s: %w", r.name, err)
		}
	}
	if err := s.setRef(r.name, *stored); err != nil {
		return err
	}
	s.log().Info("image pulled", "image", r.name, "digest", stored.Digest.String())
	return nil
}

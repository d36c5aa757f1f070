package store

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// ErrNotFound is matched (errors.Is) by every "image not in the store"
// error; the error itself is a *NotFoundError that says how to get it.
var ErrNotFound = errors.New("image not found in the image store")

// NotFoundError says which image (and platform) is missing and how to add
// it to the store.
type NotFoundError struct {
	Ref       string   // fully qualified reference
	Platform  string   // set when the image is stored but not for this platform
	Available []string // platforms the store has for Ref
}

func (e *NotFoundError) Error() string {
	if e.Platform != "" {
		return fmt.Sprintf("image %s has no %s variant in the image store (it has %s): "+
			"import it with `swarmboot image import --platform %s FILE` or, where a registry is reachable, `swarmboot image pull --platform %s %s`",
			e.Ref, e.Platform, strings.Join(e.Available, ", "), e.Platform, e.Platform, e.Ref)
	}
	return fmt.Sprintf("image %s is not in the image store: import it with `swarmboot image import FILE` "+
		"(FILE from `docker save %s` or an OCI archive of it) or, where a registry is reachable, `swarmboot image pull %s`",
		e.Ref, e.Ref, e.Ref)
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// parsePlatform parses "os/arch[/variant]"; "" is DefaultPlatform.
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		s = DefaultPlatform
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/amd64 or linux/arm64", s)
	}
	return *p, nil
}

// platformMatch reports whether have satisfies want (OS and architecture
// equal; the variant only when want names one).
func platformMatch(want v1.Platform, have *v1.Platform) bool {
	if have == nil {
		return false
	}
	return want.OS == have.OS && want.Architecture == have.Architecture &&
		(want.Variant == "" || want.Variant == have.Variant)
}

func platformString(p *v1.Platform) string {
	if p == nil || p.OS == "" {
		return "unknown"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// find returns the index.json entry for r (nil when absent).
func (s *Store) find(im *v1.IndexManifest, r imageRef) *v1.Descriptor {
	for i, d := range im.Manifests {
		if d.Annotations[AnnotationRefName] == r.name && (r.digest == "" || d.Digest.String() == r.digest) {
			return &im.Manifests[i]
		}
	}
	if r.digest != "" {
		for i, d := range im.Manifests {
			if d.Digest.String() == r.digest {
				return &im.Manifests[i]
			}
		}
	}
	return nil
}

// Image returns the stored image ref for platform ("" is linux/amd64).
// The image's blobs are read lazily from the store. A missing image or
// platform is a *NotFoundError (errors.Is(err, ErrNotFound)).
func (s *Store) Image(ref, platform string) (v1.Image, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	want, err := parsePlatform(platform)
	if err != nil {
		return nil, err
	}
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	root, err := layout.Path(s.dir).ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.name, err)
	}
	desc := s.find(im, r)
	if desc == nil {
		if img := s.findChild(root, im, r); img != nil {
			return img, nil
		}
		return nil, &NotFoundError{Ref: r.name}
	}
	if desc.MediaType.IsIndex() {
		idx, err := root.ImageIndex(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", r.name, err)
		}
		imgs, err := s.platformImages(idx, &want)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", r.name, err)
		}
		if len(imgs) == 0 {
			all, err := s.platformImages(idx, nil)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", r.name, err)
			}
			var avail []string
			for _, pi := range all {
				avail = append(avail, pi.platform)
			}
			return nil, &NotFoundError{Ref: r.name, Platform: platformString(&want), Available: avail}
		}
		return imgs[0].img, nil
	}
	if !s.hasBlob(desc.Digest) {
		return nil, fmt.Errorf("image %s: manifest %s is missing from the image store: remove it (`swarmboot image rm %s`) and import it again", r.name, desc.Digest, r.name)
	}
	img, err := root.Image(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: read config: %w", r.name, err)
	}
	if cf.OS != "" && cf.Architecture != "" && !platformMatch(want, cf.Platform()) {
		return nil, &NotFoundError{Ref: r.name, Platform: platformString(&want), Available: []string{platformString(cf.Platform())}}
	}
	return img, nil
}

// findChild finds an image pinned by the digest of one platform's
// manifest inside a stored index (nil when there is none).
func (s *Store) findChild(root v1.ImageIndex, im *v1.IndexManifest, r imageRef) v1.Image {
	if r.digest == "" {
		return nil
	}
	for _, d := range im.Manifests {
		if !d.MediaType.IsIndex() || !s.hasBlob(d.Digest) {
			continue
		}
		idx, err := root.ImageIndex(d.Digest)
		if err != nil {
			continue
		}
		imgs, err := s.platformImages(idx, nil)
		if err != nil {
			continue
		}
		for _, pi := range imgs {
			if pi.digest.String() == r.digest {
				return pi.img
			}
		}
	}
	return nil
}

// platformImage is one image of an index that the store holds.
type platformImage struct {
	platform string
	digest   v1.Hash
	img      v1.Image
}

// platformImages returns the images of idx (nested indexes included) for
// want, or for every platform when want is nil, skipping children whose
// manifest is not stored (LinuxKit keeps the whole index but only the
// platforms that were asked for).
func (s *Store) platformImages(idx v1.ImageIndex, want *v1.Platform) ([]platformImage, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []platformImage
	for _, d := range m.Manifests {
		if !s.hasBlob(d.Digest) {
			continue
		}
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			more, err := s.platformImages(child, want)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		case d.MediaType.IsImage():
			if isAttestation(d) || (want != nil && !platformMatch(*want, d.Platform)) {
				continue
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			p := d.Platform
			if p == nil {
				if cf, err := img.ConfigFile(); err == nil {
					p = cf.Platform()
				}
			}
			if want != nil && !platformMatch(*want, p) {
				continue
			}
			out = append(out, platformImage{platform: platformString(p), digest: d.Digest, img: img})
		}
	}
	return out, nil
}

// isAttestation reports whether d is a BuildKit attestation manifest
// (platform unknown/unknown), which is not an image to run.
func isAttestation(d v1.Descriptor) bool {
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

// Entry is one stored image for one platform.
type Entry struct {
	Ref      string // fully qualified reference
	Digest   string // digest of what Ref points at (an index or a manifest)
	Manifest string // digest of this platform's image manifest
	Platform string // os/arch[/variant]
	Config   string // digest of the image config: Docker's image ID
	Size     int64  // bytes of manifest, config and layers (compressed)
}

// List returns every stored image, sorted by reference and platform.
func (s *Store) List() ([]Entry, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	root, err := layout.Path(s.dir).ImageIndex()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, d := range im.Manifests {
		ref := d.Annotations[AnnotationRefName]
		if ref == "" || !s.hasBlob(d.Digest) {
			continue
		}
		var imgs []platformImage
		if d.MediaType.IsIndex() {
			idx, err := root.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", ref, err)
			}
			if imgs, err = s.platformImages(idx, nil); err != nil {
				return nil, fmt.Errorf("image %s: %w", ref, err)
			}
		} else {
			img, err := root.Image(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", ref, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return nil, fmt.Errorf("image %s: read config: %w", ref, err)
			}
			imgs = []platformImage{{platform: platformString(cf.Platform()), digest: d.Digest, img: img}}
		}
		for _, pi := range imgs {
			size, err := imageSize(pi.img)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", ref, err)
			}
			cfg, err := pi.img.ConfigName()
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", ref, err)
			}
			out = append(out, Entry{Ref: ref, Digest: d.Digest.String(), Manifest: pi.digest.String(), Platform: pi.platform, Config: cfg.String(), Size: size})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ref != out[j].Ref {
			return out[i].Ref < out[j].Ref
		}
		return out[i].Platform < out[j].Platform
	})
	return out, nil
}

func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

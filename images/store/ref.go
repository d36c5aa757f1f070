package store

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// imageRef is a parsed image reference.
type imageRef struct {
	name   string // what index.json stores: docker.io/library/alpine:3.19 or repo@sha256:...
	repo   string // docker.io/library/alpine
	digest string // sha256:... when the reference pins one
}

// Normalize returns the fully qualified form of an image reference, the
// form the store keeps in index.json (and LinuxKit's cache uses):
// "alpine" → "docker.io/library/alpine:latest", "linuxkit/init:v1.2.0" →
// "docker.io/linuxkit/init:v1.2.0". A reference with both a tag and a
// digest keeps the tag; the digest is checked on lookup.
func Normalize(ref string) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	return r.name, nil
}

func parseRef(s string) (imageRef, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return imageRef{}, fmt.Errorf("empty image reference")
	}
	var r imageRef
	base := s
	if i := strings.LastIndex(s, "@"); i >= 0 {
		base, r.digest = s[:i], s[i+1:]
		if _, err := v1.NewHash(r.digest); err != nil {
			return imageRef{}, fmt.Errorf("image reference %q: bad digest %q: %v", orig, r.digest, err)
		}
	}
	var tagged bool
	if i := strings.LastIndex(base, ":"); i >= 0 && !strings.Contains(base[i:], "/") {
		tagged = true
	}
	if r.digest != "" && !tagged {
		repo, err := name.NewRepository(base)
		if err != nil {
			return imageRef{}, fmt.Errorf("image reference %q: %v", orig, err)
		}
		r.repo = qualify(repo)
		r.name = r.repo + "@" + r.digest
		return r, nil
	}
	tag, err := name.NewTag(base)
	if err != nil {
		return imageRef{}, fmt.Errorf("image reference %q: %v", orig, err)
	}
	r.repo = qualify(tag.Repository)
	r.name = r.repo + ":" + tag.TagStr()
	return r, nil
}

// qualify spells a repository the way LinuxKit and containerd do: Docker
// Hub is docker.io (go-containerregistry says index.docker.io).
func qualify(repo name.Repository) string {
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + repo.RepositoryStr()
}

// remoteRef is the reference go-containerregistry's remote package uses
// for r.
func (r imageRef) remoteRef() (name.Reference, error) {
	if r.digest != "" {
		return name.NewDigest(r.repo + "@" + r.digest)
	}
	return name.NewTag(r.name)
}

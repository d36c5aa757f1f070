package build

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
)

// ImageStore is what the pre-check needs from *store.Store.
type ImageStore interface {
	Image(ref, platform string) (v1.Image, error)
	Pull(ctx context.Context, ref, platform string) error
}

// MissingImagesError lists every image a yml names that the store lacks,
// with the commands that add them.
type MissingImagesError struct {
	Refs []string
	Errs []error // the store's NotFoundError per ref (same order)
}

func (e *MissingImagesError) Error() string {
	var b strings.Builder
	if len(e.Refs) == 1 {
		return "build: " + e.Errs[0].Error()
	}
	fmt.Fprintf(&b, "build: %d images are not in the image store:", len(e.Refs))
	for _, r := range e.Refs {
		fmt.Fprintf(&b, "\n  %s", r)
	}
	b.WriteString("\nimport each with `swarmboot image import FILE` (FILE from `docker save IMAGE` or an OCI archive)," +
		" or, where a registry is reachable, run the build with --pull (or `swarmboot image pull IMAGE`)")
	return b.String()
}

// Is makes errors.Is(err, store.ErrNotFound) true.
func (e *MissingImagesError) Is(target error) bool { return target == store.ErrNotFound }

// CheckImages makes sure every image c names is in s for platform, before
// any work starts, so a user sees all missing images at once. With pull,
// missing images are pulled from their registry instead (the only time a
// build touches the network). Refs in skip are not checked (for example the
// agent image when the agent binary is baked in).
func CheckImages(ctx context.Context, c *yml.Config, s ImageStore, platform string, pull bool, skip ...string) error {
	missing := &MissingImagesError{}
	for _, ref := range yml.ImageRefs(c) {
		if slices.Contains(skip, ref) {
			continue
		}
		_, err := s.Image(ref, platform)
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("build: image %s: %w", ref, err)
		}
		if pull {
			if err := s.Pull(ctx, ref, platform); err != nil {
				return fmt.Errorf("build: pull %s: %w", ref, err)
			}
			continue
		}
		missing.Refs = append(missing.Refs, ref)
		missing.Errs = append(missing.Errs, err)
	}
	if len(missing.Refs) > 0 {
		return missing
	}
	return nil
}

package build

import (
	"context"
	"log/slog"
	"time"

	"github.com/swarmboot/swarmboot/images/rootfs"
	"github.com/swarmboot/swarmboot/images/yml"
)

// YMLSource builds the root filesystem of a parsed linuxkit.yml from an
// image store (images/rootfs.Assemble).
type YMLSource struct {
	Config  *yml.Config
	Images  rootfs.ImageSource // *store.Store
	Options rootfs.Options     // Platform, Agent, Logger; ModTime is set by Build
}

// FromYML returns the Source for c with images from s.
func FromYML(c *yml.Config, s rootfs.ImageSource, platform string) *YMLSource {
	return &YMLSource{Config: c, Images: s, Options: rootfs.Options{Platform: platform}}
}

// Assemble implements Source.
func (y *YMLSource) Assemble(ctx context.Context, w rootfs.Writer) (*Rootfs, error) {
	res, err := rootfs.Assemble(ctx, y.Config, y.Images, w, y.Options)
	if err != nil {
		return nil, err
	}
	out := &Rootfs{Kernel: res.Kernel, Ucode: res.Ucode, Cmdline: res.Cmdline}
	for _, im := range res.Images {
		out.Images = append(out.Images, ImageRef{Ref: im.Ref, Digest: im.Digest})
	}
	return out, nil
}

func (y *YMLSource) setDefaults(modTime time.Time, log *slog.Logger) {
	y.Options.ModTime = modTime
	if y.Options.Logger == nil {
		y.Options.Logger = log
	}
}

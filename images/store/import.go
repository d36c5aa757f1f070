package store

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// Platform is picked from multi-platform indexes: "os/arch[/variant]",
	// "" for linux/amd64, "all" for every platform.
	Platform string
	// Ref names an image the archive leaves unnamed (an OCI archive whose
	// index.json has no name annotation). With a single image in the
	// archive it also renames it.
	Ref string
}

// Annotation containerd and `docker save` (v25+) put the full image name in.
const annotationContainerdName = "io.containerd.image.name"

// maxIndexJSON bounds the metadata files read into memory from an archive.
const maxIndexJSON = 8 << 20

// Import loads an OCI archive (a tar of an OCI image layout, as written by
// `docker save` v25+, `skopeo copy ... oci-archive:`, `linuxkit cache
// export --format oci` or `buildx --output type=oci`) or a classic `docker
// save` tarball, optionally gzip-compressed, and returns the references it
// stored. Nothing touches the network.
func (s *Store) Import(ctx context.Context, file string, opt ImportOptions) ([]string, error) {
	var want *v1.Platform
	if opt.Platform != "all" {
		p, err := parsePlatform(opt.Platform)
		if err != nil {
			return nil, err
		}
		want = &p
	}
	if opt.Ref != "" {
		if _, err := parseRef(opt.Ref); err != nil {
			return nil, err
		}
	}
	var refs []string
	err := s.locked(func() error {
		if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
			return err
		}
		defer os.RemoveAll(s.tmpDir())
		tarPath, err := s.plainTar(file)
		if err != nil {
			return err
		}
		kind, err := archiveKind(tarPath)
		if err != nil {
			return fmt.Errorf("import %s: %w", file, err)
		}
		var stored []namedDesc
		if kind == "oci" {
			stored, err = s.importOCI(ctx, file, tarPath, want, opt.Ref)
		} else {
			stored, err = s.importDocker(ctx, file, tarPath, want, opt.Ref)
		}
		if err == nil {
			err = s.setRefs(stored)
		}
		if err != nil {
			// All or nothing: drop the blobs this import wrote.
			if im, ierr := s.readIndex(); ierr == nil {
				s.gc(im) //nolint:errcheck // best effort; the import error matters
			}
			return err
		}
		for _, nd := range stored {
			s.log().Info("image imported", "image", nd.name, "digest", nd.desc.Digest.String(), "file", file)
			refs = append(refs, nd.name)
		}
		return nil
	})
	return refs, err
}

// namedDesc is an image stored by an import, named once every image of the
// archive is in.
type namedDesc struct {
	name string
	desc v1.Descriptor
}

// plainTar returns file, or an uncompressed copy of it in the staging
// directory when it is gzip-compressed (the readers below seek).
func (s *Store) plainTar(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return file, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return "", fmt.Errorf("import %s: bad gzip stream: %w", file, err)
	}
	out, err := os.CreateTemp(s.tmpDir(), "archive-*.tar")
	if err != nil {
		return "", err
	}
	defer out.Close()
	if _, err := io.Copy(out, zr); err != nil {
		return "", fmt.Errorf("import %s: decompress: %w (is the file complete?)", file, err)
	}
	return out.Name(), out.Close()
}

// archiveKind scans the tar's headers (seeking past contents): "oci" when
// it holds index.json (and oci-layout, or no manifest.json), "docker"
// when it holds manifest.json.
func archiveKind(tarPath string) (string, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	seen := map[string]bool{}
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if n == 0 {
				return "", fmt.Errorf("not a tar archive (%v): want an OCI archive or a `docker save` tarball", err)
			}
			return "", fmt.Errorf("corrupt tar archive after %d entries: %w (is the file complete?)", n, err)
		}
		n++
		seen[path.Clean(strings.TrimPrefix(h.Name, "./"))] = true
	}
	switch {
	case seen["index.json"] && (seen["oci-layout"] || !seen["manifest.json"]):
		// Some exporters omit oci-layout; docker save (v25+) writes both
		// layouts, and the OCI one keeps the registry's manifests.
		return "oci", nil
	case seen["manifest.json"]:
		return "docker", nil
	case n == 0:
		return "", errors.New("empty archive: want an OCI archive or a `docker save` tarball")
	}
	return "", errors.New("neither an OCI archive (no index.json and oci-layout) nor a `docker save` tarball (no manifest.json)")
}

var blobName = regexp.MustCompile(`^blobs/sha256/[0-9a-f]{64}$`)

// importOCI extracts the archive's blobs into a staging layout, checking
// every digest, then stores the images its index.json names.
func (s *Store) importOCI(ctx context.Context, file, tarPath string, want *v1.Platform, rename string) ([]namedDesc, error) {
	stage, err := os.MkdirTemp(s.tmpDir(), "oci-*")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(stage, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	if err := extractOCI(ctx, tarPath, stage); err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	idx, err := layout.ImageIndexFromPath(stage)
	if err != nil {
		return nil, fmt.Errorf("import %s: index.json: %w", file, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("import %s: index.json: %w", file, err)
	}
	if len(im.Manifests) == 0 {
		return nil, fmt.Errorf("import %s: index.json lists no images", file)
	}
	if rename != "" && len(im.Manifests) > 1 {
		return nil, fmt.Errorf("import %s: --ref names one image but the archive holds %d", file, len(im.Manifests))
	}
	var refs []namedDesc
	for _, d := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return refs, err
		}
		ref := rename
		if ref == "" {
			if ref = descName(d); ref == "" {
				return refs, fmt.Errorf("import %s: image %s has no name in index.json: give it one with --ref NAME", file, d.Digest)
			}
		}
		r, err := parseRef(ref)
		if err != nil {
			return refs, fmt.Errorf("import %s: %w", file, err)
		}
		var desc *v1.Descriptor
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err == nil {
				desc, err = s.writeIndex(child, want, stage)
			}
			if err != nil {
				return refs, fmt.Errorf("import %s: image %s: %w", file, r.name, incomplete(err))
			}
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err == nil {
				err = checkPlatform(img, want)
			}
			if err == nil {
				desc, err = s.writeImage(img, stage)
			}
			if err != nil {
				return refs, fmt.Errorf("import %s: image %s: %w", file, r.name, incomplete(err))
			}
		default:
			return refs, fmt.Errorf("import %s: image %s: unsupported media type %q", file, r.name, d.MediaType)
		}
		refs = append(refs, namedDesc{r.name, *desc})
	}
	return refs, nil
}

// incomplete explains a blob the archive's manifests name but do not hold.
func incomplete(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the archive is incomplete, a blob it references is missing (%v): export the image again", err)
	}
	return err
}

// descName is the full image name of an index.json entry: containerd's
// annotation, else the OCI ref.name when it is a reference rather than a
// bare tag.
func descName(d v1.Descriptor) string {
	if n := d.Annotations[annotationContainerdName]; n != "" {
		return n
	}
	n := d.Annotations[AnnotationRefName]
	if strings.ContainsAny(n, ":/@") {
		return n
	}
	return ""
}

// checkPlatform refuses a single-platform image for another platform.
func checkPlatform(img v1.Image, want *v1.Platform) error {
	if want == nil {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if cf.OS != "" && cf.Architecture != "" && !platformMatch(*want, cf.Platform()) {
		return fmt.Errorf("%w: the image is %s, not %s; choose it with --platform %s",
			errNoPlatform, platformString(cf.Platform()), platformString(want), platformString(cf.Platform()))
	}
	return nil
}

// extractOCI writes index.json and blobs/sha256/* of the tar into stage,
// verifying each blob's digest. Other entries are ignored; a path outside
// the layout is never written.
func extractOCI(ctx context.Context, tarPath, stage string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("corrupt tar archive: %w (is the file complete?)", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag != tar.TypeReg {
			continue
		}
		switch {
		case name == "index.json":
			b, err := io.ReadAll(io.LimitReader(tr, maxIndexJSON+1))
			if err != nil {
				return fmt.Errorf("read index.json: %w", err)
			}
			if len(b) > maxIndexJSON {
				return errors.New("index.json is larger than 8 MiB")
			}
			if _, err := v1.ParseIndexManifest(bytes.NewReader(b)); err != nil {
				return fmt.Errorf("index.json is not an OCI image index: %w", err)
			}
			if err := os.WriteFile(filepath.Join(stage, "index.json"), b, 0o644); err != nil {
				return err
			}
		case blobName.MatchString(name):
			hash, _ := v1.NewHash("sha256:" + path.Base(name))
			if err := stageBlob(filepath.Join(stage, filepath.FromSlash(name)), hash, tr); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
}

func stageBlob(dst string, want v1.Hash, r io.Reader) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	got, _, err := v1.SHA256(io.TeeReader(r, out))
	if err == nil {
		err = syncFile(out) // renamed into the store later: durable first
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("read: %w (is the file complete?)", err)
	}
	if got != want {
		return fmt.Errorf("content hashes to %s: the archive is corrupt", got)
	}
	return nil
}

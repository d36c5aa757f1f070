package store

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// dockerManifest is one entry of a `docker save` manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// stagedFile is an archive member copied into the staging directory.
type stagedFile struct {
	path   string
	digest v1.Hash
	size   int64
	media  types.MediaType // layers: by the content's compression
}

// importDocker stores the images of a `docker save` tarball, one reference
// per RepoTag. It reads the archive once, hashing each config and layer as
// it is copied; layers are kept as they are in the archive (uncompressed
// for docker save, so no recompression), and an OCI manifest is written for
// each image. Uncompressed layers are checked against the config's diff_ids.
func (s *Store) importDocker(ctx context.Context, file, tarPath string, want *v1.Platform, rename string) ([]namedDesc, error) {
	mf, links, err := readDockerManifest(tarPath)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	if len(mf) == 0 {
		return nil, fmt.Errorf("import %s: manifest.json lists no images", file)
	}
	if rename != "" && len(mf) > 1 {
		return nil, fmt.Errorf("import %s: --ref names one image but the archive holds %d", file, len(mf))
	}
	needed := map[string]bool{}
	for _, d := range mf {
		needed[resolveLink(links, d.Config)] = true
		for _, l := range d.Layers {
			needed[resolveLink(links, l)] = true
		}
	}
	stage, err := os.MkdirTemp(s.tmpDir(), "docker-*")
	if err != nil {
		return nil, err
	}
	staged, err := stageDocker(ctx, tarPath, stage, needed)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	var refs []namedDesc
	for i, d := range mf {
		names := d.RepoTags
		if rename != "" {
			names = []string{rename}
		}
		if len(names) == 0 {
			return refs, fmt.Errorf("import %s: image %d (%s) has no tag: give it one with --ref NAME", file, i+1, d.Config)
		}
		desc, err := s.storeDockerImage(d, links, staged, want)
		if err != nil {
			return refs, fmt.Errorf("import %s: image %s: %w", file, names[0], err)
		}
		for _, n := range names {
			r, err := parseRef(n)
			if err != nil {
				return refs, fmt.Errorf("import %s: %w", file, err)
			}
			refs = append(refs, namedDesc{r.name, *desc})
		}
	}
	return refs, nil
}

// readDockerManifest scans the archive for manifest.json and symlinks
// (older docker save links shared layers).
func readDockerManifest(tarPath string) ([]dockerManifest, map[string]string, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	links := map[string]string{}
	var raw []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("corrupt tar archive: %w (is the file complete?)", err)
		}
		name := cleanMember(h.Name)
		switch {
		case h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink:
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), target)
			}
			links[name] = cleanMember(target)
		case name == "manifest.json" && h.Typeflag == tar.TypeReg:
			if raw, err = io.ReadAll(io.LimitReader(tr, maxIndexJSON+1)); err != nil {
				return nil, nil, fmt.Errorf("read manifest.json: %w", err)
			}
			if len(raw) > maxIndexJSON {
				return nil, nil, errors.New("manifest.json is larger than 8 MiB")
			}
		}
	}
	var mf []dockerManifest
	if err := json.Unmarshal(raw, &mf); err != nil {
		return nil, nil, fmt.Errorf("manifest.json is not a docker save manifest: %w", err)
	}
	return mf, links, nil
}

func cleanMember(name string) string {
	return path.Clean(strings.TrimPrefix(name, "./"))
}

// resolveLink follows archive links (a bounded number of hops).
func resolveLink(links map[string]string, name string) string {
	name = cleanMember(name)
	for i := 0; i < 16; i++ {
		t, ok := links[name]
		if !ok {
			break
		}
		name = t
	}
	return name
}

// stageDocker copies the needed members into stage, hashing them.
func stageDocker(ctx context.Context, tarPath, stage string, needed map[string]bool) (map[string]stagedFile, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	staged := map[string]stagedFile{}
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return staged, nil
		}
		if err != nil {
			return nil, fmt.Errorf("corrupt tar archive: %w (is the file complete?)", err)
		}
		name := cleanMember(h.Name)
		if h.Typeflag != tar.TypeReg || !needed[name] {
			continue
		}
		if _, dup := staged[name]; dup {
			continue
		}
		sf, err := stageMember(tr, filepath.Join(stage, fmt.Sprint(n)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		staged[name] = sf
	}
}

func stageMember(r io.Reader, dst string) (stagedFile, error) {
	out, err := os.Create(dst)
	if err != nil {
		return stagedFile{}, err
	}
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(4)
	media := types.OCIUncompressedLayer
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		media = types.OCILayer
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		media = types.OCILayerZStd
	}
	h, size, err := v1.SHA256(io.TeeReader(br, out))
	if err == nil {
		err = syncFile(out) // renamed into the store later: durable first
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return stagedFile{}, fmt.Errorf("read: %w (is the file complete?)", err)
	}
	return stagedFile{path: dst, digest: h, size: size, media: media}, nil
}

// storeDockerImage moves one image's staged config and layers into the
// store and writes its OCI manifest.
func (s *Store) storeDockerImage(d dockerManifest, links map[string]string, staged map[string]stagedFile, want *v1.Platform) (*v1.Descriptor, error) {
	cfgFile, ok := staged[resolveLink(links, d.Config)]
	if !ok {
		return nil, fmt.Errorf("manifest.json names config %s, which the archive lacks: export the image again", d.Config)
	}
	rawCfg, err := os.ReadFile(cfgFile.path)
	if errors.Is(err, os.ErrNotExist) && s.hasBlob(cfgFile.digest) {
		// Another image of the archive shares this config and moved it.
		rawCfg, err = s.readBlob(cfgFile.digest)
	}
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", d.Config, err)
	}
	if want != nil && cf.OS != "" && cf.Architecture != "" && !platformMatch(*want, cf.Platform()) {
		return nil, fmt.Errorf("%w: the image is %s, not %s; choose it with --platform %s",
			errNoPlatform, platformString(cf.Platform()), platformString(want), platformString(cf.Platform()))
	}
	if len(cf.RootFS.DiffIDs) != len(d.Layers) {
		return nil, fmt.Errorf("manifest.json lists %d layers but the config has %d diff_ids: the archive is corrupt", len(d.Layers), len(cf.RootFS.DiffIDs))
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: cfgFile.size, Digest: cfgFile.digest},
	}
	for i, l := range d.Layers {
		sf, ok := staged[resolveLink(links, l)]
		if !ok {
			return nil, fmt.Errorf("manifest.json names layer %s, which the archive lacks: export the image again", l)
		}
		if sf.media == types.OCIUncompressedLayer && sf.digest != cf.RootFS.DiffIDs[i] {
			return nil, fmt.Errorf("layer %s hashes to %s but the config says %s: the archive is corrupt", l, sf.digest, cf.RootFS.DiffIDs[i])
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: sf.media, Size: sf.size, Digest: sf.digest})
	}
	for _, sf := range append([]stagedFile{cfgFile}, layersOf(d, links, staged)...) {
		if s.hasBlob(sf.digest) {
			continue
		}
		if err := os.Rename(sf.path, s.blobPath(sf.digest)); err != nil {
			return nil, err
		}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	h, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if err := s.putBlob(h, bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	desc := &v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: size, Digest: h}
	if cf.OS != "" {
		desc.Platform = cf.Platform()
	}
	return desc, nil
}

func layersOf(d dockerManifest, links map[string]string, staged map[string]stagedFile) []stagedFile {
	var out []stagedFile
	for _, l := range d.Layers {
		out = append(out, staged[resolveLink(links, l)])
	}
	return out
}

package rotate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"unicode"
	"unicode/utf8"
)

// maxVersion bounds a version line ("NAME@" and a short digest).
const maxVersion = 128

// ReadVersionFile reads dir/name.version, the one-line version the
// builder writes beside a build's artifacts and bakes into the image
// (the agent reports it as api.Report.ImageVersion). The file is read
// bounded and must hold one line of printable characters without spaces.
func ReadVersionFile(dir, name string) (string, error) {
	path := filepath.Join(dir, name+".version")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("image %s: no %s: build it with swarmboot build --name %s -o %s (a build writes its version beside its artifacts)", name, path, name, dir)
	}
	if err != nil {
		return "", fmt.Errorf("image %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxVersion+2))
	if err != nil {
		return "", fmt.Errorf("image %s: %s: %w", name, path, err)
	}
	v, err := parseVersion(b)
	if err != nil {
		return "", fmt.Errorf("image %s: %s: %w: rebuild the image", name, path, err)
	}
	return v, nil
}

// parseVersion accepts one version and an optional newline.
func parseVersion(b []byte) (string, error) {
	b = bytes.TrimSuffix(b, []byte("\n"))
	switch {
	case len(b) == 0:
		return "", errors.New("empty version file")
	case len(b) > maxVersion:
		return "", fmt.Errorf("version longer than %d bytes", maxVersion)
	case !utf8.Valid(b):
		return "", errors.New("version is not UTF-8")
	}
	for _, c := range string(b) {
		if !unicode.IsPrint(c) || unicode.IsSpace(c) {
			return "", fmt.Errorf("version %q: want one line of printable characters without spaces", b)
		}
	}
	return string(b), nil
}

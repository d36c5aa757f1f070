// Package imageversion is the format of an image's version and where an
// image carries it. A version is the build's name and the first 12 hex
// digits of a digest of everything the build put into the image:
//
//	worker@3f2a9c1d0b7e
//
// The builder (images/build) writes it beside the artifacts as
// NAME.version and inside the image as /etc/swarmboot/image-version
// (Path); the agent reports it with every heartbeat, and a rotation waits
// until a rebooted node reports the version it expects. The file is one
// line; whoever reads it treats it as untrusted (bounded read, printable
// characters only). This package is a leaf (standard library only) so the
// agent can use it without the builder.
package imageversion

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// Dir is the directory of the version file inside an image (the
	// agent's trust directory, api.TrustDir, which it sees read-only).
	Dir = "/etc/swarmboot"
	// FileName is the version file's name in Dir. The appliance's trust
	// initrd writes only appliance.json and ca.pem there, so unpacking it
	// over an image keeps this file.
	FileName = "image-version"
	// Path is the version file inside an image.
	Path = Dir + "/" + FileName

	// HexLen is the number of hex digits of the digest in a version.
	HexLen = 12
	// MaxNameLen bounds a build name that is part of a version.
	MaxNameLen = 100
	// MaxLen bounds a whole version ("NAME@" + HexLen hex digits).
	MaxLen = MaxNameLen + 1 + HexLen
)

// ErrInvalid wraps every refusal of a malformed version.
var ErrInvalid = errors.New("imageversion: invalid")

// New returns the version of a build called name whose inputs hash to sum
// (at least HexLen/2 bytes); name must pass CheckName.
func New(name string, sum []byte) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	if len(sum) < HexLen/2 {
		return "", fmt.Errorf("%w: digest of %d bytes, want at least %d", ErrInvalid, len(sum), HexLen/2)
	}
	return name + "@" + hex.EncodeToString(sum[:HexLen/2]), nil
}

// CheckName reports whether name can be the name part of a version: 1 to
// MaxNameLen bytes of printable UTF-8 without spaces, '@' or slashes.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty image name", ErrInvalid)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: image name of %d bytes, want at most %d", ErrInvalid, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: image name %q is not UTF-8", ErrInvalid, name)
	case strings.ContainsAny(name, "@/\\"):
		return fmt.Errorf("%w: image name %q contains '@', '/' or '\\'", ErrInvalid, name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: image name %q: want printable characters without spaces", ErrInvalid, name)
		}
	}
	return nil
}

// Parse splits a version into its name and hex digest, refusing anything
// that New would not have made.
func Parse(v string) (name, digest string, err error) {
	if len(v) > MaxLen {
		return "", "", fmt.Errorf("%w: %d bytes, want at most %d", ErrInvalid, len(v), MaxLen)
	}
	i := strings.LastIndexByte(v, '@')
	if i < 0 {
		return "", "", fmt.Errorf("%w: %q: want NAME@<%d hex digits>", ErrInvalid, v, HexLen)
	}
	name, digest = v[:i], v[i+1:]
	if err := CheckName(name); err != nil {
		return "", "", err
	}
	if len(digest) != HexLen || strings.Trim(digest, "0123456789abcdef") != "" {
		return "", "", fmt.Errorf("%w: %q: want NAME@<%d lowercase hex digits>", ErrInvalid, v, HexLen)
	}
	return name, digest, nil
}

// Line is the content of a version file: the version and a newline.
func Line(v string) []byte { return []byte(v + "\n") }

// ReadFile reads a version file: one line holding one version, at most
// MaxLen bytes plus the newline. Errors name the file.
func ReadFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxLen+2))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	v, err := parseLine(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// parseLine accepts exactly one version and an optional trailing newline.
func parseLine(b []byte) (string, error) {
	if len(b) > MaxLen+1 {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen+1)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	v := string(b)
	if _, _, err := Parse(v); err != nil {
		return "", err
	}
	return v, nil
}

// Resolve is the version an agent reports: the version file in trustDir
// (Dir in an image) when there is one; fallback (appliance.json's "image",
// which images built before version files carried) when there is none. A
// version file that exists but is malformed is an error, returned with the
// fallback so the caller can log it and carry on.
func Resolve(trustDir, fallback string) (string, error) {
	v, err := ReadFile(filepath.Join(trustDir, FileName))
	switch {
	case err == nil:
		return v, nil
	case errors.Is(err, os.ErrNotExist):
		return fallback, nil
	}
	return fallback, err
}

package daemon

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/cpio"
)

// TrustInitrdName is the artifact Config.TrustInitrd writes into the
// artifacts directory and adds to every boot.
const TrustInitrdName = "swarmboot-trust.img"

// writeTrustInitrd writes a newc archive with the appliance's public trust
// material (api.TrustFiles: appliance.json with the agent API URL, ca.pem)
// into the artifacts directory. The kernel unpacks it over the image's
// initramfs, so an image built without them still finds its appliance.
// Nothing in it is secret.
//
// It writes only those two files (and the directories above them): the
// kernel replaces a file of the same name but keeps an existing directory
// and everything else in it, so the image's own files under
// /etc/swarmboot stay, the version file the builder bakes in
// (imageversion.Path) among them. One trust initrd serves every image, so
// its appliance.json names no image: agents report the version file
// (trust_test.go).
func (d *Daemon) writeTrustInitrd() error {
	if d.cfg.Artifacts == "" {
		return fmt.Errorf("daemon: TrustInitrd needs an artifacts directory to serve it from")
	}
	u := d.apiURL
	files, err := api.TrustFiles(api.TrustConfig{URL: u}, d.api.CA.CertPEM)
	if err != nil {
		return fmt.Errorf("daemon: trust initrd: %w", err)
	}
	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	dirs := map[string]bool{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rel := strings.TrimPrefix(n, "/")
		for dir := filepath.Dir(rel); dir != "." && !dirs[dir]; dir = filepath.Dir(dir) {
			dirs[dir] = true
		}
	}
	dl := make([]string, 0, len(dirs))
	for dir := range dirs {
		dl = append(dl, dir)
	}
	sort.Strings(dl) // parents first
	for _, dir := range dl {
		if err := w.WriteHeader(&cpio.Header{Name: dir, Mode: fs.ModeDir | 0o755}); err != nil {
			return err
		}
	}
	for _, n := range names {
		b := files[n]
		if err := w.WriteHeader(&cpio.Header{Name: strings.TrimPrefix(n, "/"), Mode: 0o644, Size: int64(len(b))}); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	path := filepath.Join(d.cfg.Artifacts, TrustInitrdName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("daemon: write trust initrd: %w (is --artifacts writable?)", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("daemon: write trust initrd: %w", err)
	}
	d.trust = TrustInitrdName
	return nil
}

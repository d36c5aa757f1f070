package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/swarmboot/swarmboot/pkg/debfix"
)

// BenchmarkImportDockerSave imports a ~150 MB classic `docker save`
// tarball (three uncompressed layers of real binaries: Debian kernel
// modules) and compares with `docker load` of the same file into a private
// dockerd (the reference), reporting x-vs-docker-load (lower is better).
func BenchmarkImportDockerSave(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	docker := privateDockerd(b, ctx)
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		b.Skipf("no Debian kernel for content: %v", err)
	}
	file := legacySave(b, k.Modules, 150<<20, 3)
	var ours, ref time.Duration
	for i := 0; i < b.N; i++ {
		s, err := Open(filepath.Join(b.TempDir(), "images"))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := s.Import(ctx, file, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)

		start = time.Now()
		if out, err := docker(nil, "load", "-q", "-i", file); err != nil {
			b.Fatalf("docker load: %v\n%s", err, out)
		}
		ref += time.Since(start)
		if out, err := docker(nil, "rmi", "bench/modules:v1"); err != nil {
			b.Fatalf("docker rmi: %v\n%s", err, out)
		}
	}
	ratio := float64(ours) / float64(ref)
	b.ReportMetric(ratio, "x-vs-docker-load")
	b.Logf("import of a %d MiB docker save: swarmboot %v, docker load %v (%.2fx)", fileSize(b, file)>>20,
		(ours / time.Duration(b.N)).Round(time.Millisecond), (ref / time.Duration(b.N)).Round(time.Millisecond), ratio)
}

func fileSize(tb testing.TB, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// legacySave writes a classic docker-save tarball of about total bytes of
// the files under root, split into n uncompressed layers.
func legacySave(tb testing.TB, root string, total int64, n int) string {
	tb.Helper()
	var files []string
	var sum int64
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || sum >= total {
			return err
		}
		fi, err := d.Info()
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		files = append(files, p)
		sum += fi.Size()
		return nil
	})
	dir := tb.TempDir()
	out, err := os.Create(filepath.Join(dir, "save.tar"))
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	var layerNames []string
	var diffIDs []v1.Hash
	per := (len(files) + n - 1) / n
	for i := 0; i < n; i++ {
		lo, hi := i*per, min((i+1)*per, len(files))
		lp := filepath.Join(dir, "layer.tar")
		lf, _ := os.Create(lp)
		ltw := tar.NewWriter(lf)
		for _, f := range files[lo:hi] {
			rel, _ := filepath.Rel(root, f)
			fi, _ := os.Stat(f)
			ltw.WriteHeader(&tar.Header{Name: "lib/modules/" + rel, Mode: 0o644, Size: fi.Size(), ModTime: time.Unix(1e9, 0), Typeflag: tar.TypeReg})
			src, _ := os.Open(f)
			io.Copy(ltw, src)
			src.Close()
		}
		ltw.Close()
		lf.Close()
		lb, _ := os.Open(lp)
		h, size, _ := v1.SHA256(lb)
		lb.Seek(0, 0)
		name := h.Hex + "/layer.tar"
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
		io.Copy(tw, lb)
		lb.Close()
		layerNames = append(layerNames, name)
		diffIDs = append(diffIDs, h)
	}
	cfg := v1.ConfigFile{Architecture: "amd64", OS: "linux", RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}}
	cb, _ := json.Marshal(cfg)
	ch, _, _ := v1.SHA256(bytesReader(cb))
	add := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	add(ch.Hex+".json", cb)
	mf, _ := json.Marshal([]map[string]any{{"Config": ch.Hex + ".json", "RepoTags": []string{"bench/modules:v1"}, "Layers": layerNames}})
	add("manifest.json", mf)
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return out.Name()
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

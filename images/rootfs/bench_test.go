package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/swarmboot/swarmboot/images/yml"
)

// benchLayers writes n gzip'd layer blobs of about size bytes each (files of
// 1-64 KiB, half text-like, half random) and returns their paths.
func benchLayers(b *testing.B, dir string, n int, size int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	var paths []string
	for li := 0; li < n; li++ {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		total := 0
		for d := 0; total < size; d++ {
			dn := "l" + strconv.Itoa(li) + "/d" + strconv.Itoa(d) + "/"
			tw.WriteHeader(&tar.Header{Name: dn, Typeflag: tar.TypeDir, Mode: 0o755})
			for f := 0; f < 50 && total < size; f++ {
				data := make([]byte, 1024+rng.IntN(63*1024))
				for i := range data {
					if f%2 == 0 {
						data[i] = "abcdefgh \n"[rng.IntN(10)]
					} else {
						data[i] = byte(rng.Uint32())
					}
				}
				tw.WriteHeader(&tar.Header{Name: dn + "f" + strconv.Itoa(f), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
				tw.Write(data)
				total += len(data)
			}
		}
		tw.Close()
		raw := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
		if err != nil {
			b.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(dir, "layer"+strconv.Itoa(li)+".tar.gz")
		gz, _ := io.ReadAll(rc)
		if err := os.WriteFile(p, gz, 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// BenchmarkAssemble assembles a service whose image has 3 layers of ~40 MB
// (to a writer that discards) and compares with the reference extraction of
// the same layers: `tar -xzf` of each, in order, into a directory.
func BenchmarkAssemble(b *testing.B) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		b.Skip("reference needs tar")
	}
	dir := b.TempDir()
	paths := benchLayers(b, dir, 3, 40<<20)
	var layers []v1.Layer
	for _, p := range paths {
		l, err := tarball.LayerFromFile(p)
		if err != nil {
			b.Fatal(err)
		}
		layers = append(layers, l)
	}
	img := image(b, v1.Config{Cmd: []string{"/x"}}, layers...)
	// the store knows digests from the manifest; compute them here, untimed
	if _, err := img.Digest(); err != nil {
		b.Fatal(err)
	}
	if _, err := img.ConfigFile(); err != nil {
		b.Fatal(err)
	}
	src := memSource{"bench/svc:1": img}
	c, err := yml.Parse("bench.yml", []byte("services:\n  - name: svc\n    image: bench/svc:1\n"))
	if err != nil {
		b.Fatal(err)
	}
	discard := WriterFunc(func(h *Header, r io.Reader) error { _, err := io.Copy(io.Discard, r); return err })

	// best of 3 rounds each, alternating, so a busy machine skews less
	ours, ref := time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for i := 0; i < b.N*3; i++ {
		start := time.Now()
		if _, err := Assemble(context.Background(), c, src, discard, Options{}); err != nil {
			b.Fatal(err)
		}
		ours = min(ours, time.Since(start))

		b.StopTimer()
		out := filepath.Join(dir, "ref"+strconv.Itoa(i))
		os.MkdirAll(out, 0o755)
		start = time.Now()
		for _, p := range paths {
			if o, err := exec.Command(tarBin, "-xzf", p, "-C", out).CombinedOutput(); err != nil {
				b.Fatalf("tar: %v: %s", err, o)
			}
		}
		ref = min(ref, time.Since(start))
		os.RemoveAll(out)
		b.StartTimer()
	}
	ratio := ours.Seconds() / ref.Seconds()
	b.ReportMetric(ratio, "x-vs-tar-xzf")
	b.Logf("Assemble %v vs tar -xzf %v (best of 3): %.2fx", ours, ref, ratio)
}

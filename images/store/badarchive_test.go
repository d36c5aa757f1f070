package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

type entry struct {
	name string
	body string
}

func tarBytes(t testing.TB, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func writeTemp(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in.tar")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportBadArchives(t *testing.T) {
	t.Parallel()
	good := ociArchive(t, map[string]mutate.Appendable{"a/b:c": testImage(t, "linux/amd64")}, AnnotationRefName)
	goodBytes, _ := os.ReadFile(good)
	corrupt := corruptBlob(t, goodBytes)
	sha := "sha256:" + strings.Repeat("1", 64)

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not a tar", []byte("hello, this is not an archive at all, certainly not a tar file......"), "not a tar archive"},
		{"empty", nil, "empty archive"},
		{"bad gzip", []byte{0x1f, 0x8b, 1, 2, 3}, "gzip"},
		{"truncated", goodBytes[:len(goodBytes)/2], "is the file complete"},
		{"neither", tarBytes(t, entry{"etc/passwd", "root:x:0:0"}), "neither an OCI archive"},
		{"bad index.json", tarBytes(t, entry{"oci-layout", "{}"}, entry{"index.json", "[[["}), "index.json"},
		{"empty index", tarBytes(t, entry{"oci-layout", "{}"}, entry{"index.json", `{"schemaVersion":2,"manifests":[]}`}), "lists no images"},
		{"missing blob", tarBytes(t, entry{"oci-layout", "{}"}, entry{"index.json",
			`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + sha + `","size":3,"annotations":{"org.opencontainers.image.ref.name":"a/b:c"}}]}`}), "archive is incomplete"},
		{"corrupt blob", corrupt, "content hashes to"},
		{"bad manifest.json", tarBytes(t, entry{"manifest.json", "{"}), "manifest.json"},
		{"docker save without layers", tarBytes(t, entry{"manifest.json", `[{"Config":"c.json","RepoTags":["x:y"],"Layers":["nope/layer.tar"]}]`}), "import"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			file := writeTemp(t, tc.data)
			refs, err := s.Import(context.Background(), file, ImportOptions{})
			if err == nil {
				t.Fatalf("imported %q from a bad archive", refs)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), file) && tc.name != "empty" && tc.name != "not a tar" {
				t.Logf("note: error does not name the file: %v", err)
			}
			ents, lerr := s.List()
			if lerr != nil || len(ents) != 0 {
				t.Fatalf("store changed by a failed import: %+v %v", ents, lerr)
			}
		})
	}
	s := openStore(t)
	if _, err := s.Import(context.Background(), filepath.Join(t.TempDir(), "absent.tar"), ImportOptions{}); err == nil || !strings.Contains(err.Error(), "absent.tar") {
		t.Fatalf("missing file: %v", err)
	}
}

// corruptBlob flips a byte inside the largest blob of an OCI archive.
func corruptBlob(t testing.TB, archive []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	var ents []entry
	big := -1
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		var b bytes.Buffer
		b.ReadFrom(tr)
		if strings.HasPrefix(h.Name, "blobs/") && (big < 0 || b.Len() > len(ents[big].body)) {
			big = len(ents)
		}
		ents = append(ents, entry{h.Name, b.String()})
	}
	body := []byte(ents[big].body)
	body[len(body)/2] ^= 0xff
	ents[big].body = string(body)
	return tarBytes(t, ents...)
}

// FuzzImport feeds malformed archives to Import: it must return an error or
// refs, never panic, and never write outside the store.
func FuzzImport(f *testing.F) {
	f.Add([]byte{})
	f.Add(tarBytes(f, entry{"oci-layout", "{}"}, entry{"index.json", `{"schemaVersion":2,"manifests":[]}`}))
	f.Add(tarBytes(f, entry{"manifest.json", `[{"Config":"c.json","RepoTags":["x:y"],"Layers":["l/layer.tar"]}]`}, entry{"c.json", "{}"}, entry{"l/layer.tar", ""}))
	f.Add(tarBytes(f, entry{"../../escape", "x"}, entry{"oci-layout", "{}"}, entry{"index.json", "{}"}))
	small, err := random.Image(16, 1)
	if err != nil {
		f.Fatal(err)
	}
	good := ociArchive(f, map[string]mutate.Appendable{"a/b:c": small}, AnnotationRefName)
	b, _ := os.ReadFile(good)
	f.Add(b)
	noSync.Store(true) // fsync is not what is fuzzed; it slows each run tenfold
	defer noSync.Store(false)
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		s, err := Open(filepath.Join(root, "images"))
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(root, "in.tar")
		os.WriteFile(file, data, 0o644)
		refs, err := s.Import(context.Background(), file, ImportOptions{Platform: "all"})
		if err == nil {
			for _, r := range refs {
				if _, err := Normalize(r); err != nil {
					t.Fatalf("stored an invalid ref %q", r)
				}
			}
		}
		if _, err := s.List(); err != nil && !strings.Contains(err.Error(), "image") {
			t.Fatalf("List after import: %v", err)
		}
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.Name() != "images" && e.Name() != "in.tar" {
				t.Fatalf("import wrote %s outside the store", e.Name())
			}
		}
	})
}

// TestImportOCIWithoutLayoutFile: some exporters omit oci-layout.
func TestImportOCIWithoutLayoutFile(t *testing.T) {
	t.Parallel()
	img := testImage(t, "linux/amd64")
	b, _ := os.ReadFile(ociArchive(t, map[string]mutate.Appendable{"a/b:c": img}, AnnotationRefName))
	tr := tar.NewReader(bytes.NewReader(b))
	var ents []entry
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var body bytes.Buffer
		body.ReadFrom(tr)
		if h.Typeflag == tar.TypeReg && h.Name != "oci-layout" {
			ents = append(ents, entry{h.Name, body.String()})
		}
	}
	s := openStore(t)
	refs, err := s.Import(context.Background(), writeTemp(t, tarBytes(t, ents...)), ImportOptions{})
	if err != nil || len(refs) != 1 || refs[0] != "docker.io/a/b:c" {
		t.Fatalf("refs %q, err %v", refs, err)
	}
	got, err := s.Image("a/b:c", "")
	if err != nil || digestOf(t, got) != digestOf(t, img) {
		t.Fatalf("image: %v", err)
	}
}

// TestImportAllOrNothing: when one image of an archive is bad, none is
// named and the blobs already written are dropped.
func TestImportAllOrNothing(t *testing.T) {
	t.Parallel()
	img := testImage(t, "linux/amd64")
	good := dockerSave(t, img, "ok/img:v1")
	var ents []entry
	b, _ := os.ReadFile(good)
	tr := tar.NewReader(bytes.NewReader(b))
	var mf []map[string]any
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var body bytes.Buffer
		body.ReadFrom(tr)
		if h.Name == "manifest.json" {
			if err := json.Unmarshal(body.Bytes(), &mf); err != nil {
				t.Fatal(err)
			}
			continue
		}
		ents = append(ents, entry{h.Name, body.String()})
	}
	bad := map[string]any{"Config": mf[0]["Config"], "RepoTags": []string{"bad/img:v1"}, "Layers": []string{"missing/layer.tar", "missing/layer.tar"}}
	out, _ := json.Marshal(append(mf, bad))
	ents = append(ents, entry{"manifest.json", string(out)})

	s := openStore(t)
	_, err := s.Import(context.Background(), writeTemp(t, tarBytes(t, ents...)), ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "bad/img:v1") || !strings.Contains(err.Error(), "missing/layer.tar") {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := s.List(); len(ents) != 0 {
		t.Fatalf("a failed import named %+v", ents)
	}
	if n := countBlobs(t, s); n != 0 {
		t.Fatalf("a failed import left %d blobs", n)
	}
}

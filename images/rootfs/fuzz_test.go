package rootfs

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func rawLayer(data []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// FuzzFlatten feeds arbitrary bytes as image layers (imported archives are
// untrusted): flattening must not panic, and whatever it writes must keep
// the Writer contract (clean names, parents first, sizes exact, hard links
// after their targets), which the recorder checks.
func FuzzFlatten(f *testing.F) {
	seeds := [][]te{
		{{name: "etc/"}, {name: "etc/a", data: "a"}, {name: "etc/.wh.b"}, {name: "bin/sh", link: "busybox"}},
		{{name: "a", data: "file"}, {name: "a/b", data: "below a file"}, {name: "x/y/z", data: "deep"}},
		{{name: "d/"}, {name: "d/.wh..wh..opq"}, {name: "d/f", data: "f"}, {name: "h", link: "d/f", hard: true}},
		{{name: "../escape", data: "no"}},
	}
	for _, s := range seeds {
		l := layer(f, s...)
		rc, _ := l.Uncompressed()
		b, _ := io.ReadAll(rc)
		f.Add(b, b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, lower, upper []byte) {
		var layers []v1.Layer
		for _, data := range [][]byte{lower, upper} {
			l, err := rawLayer(data)
			if err != nil {
				return
			}
			layers = append(layers, l)
		}
		rec := newRecorder(t)
		out := &emitter{w: rec, seen: map[string]fs.FileMode{}, log: slog.New(slog.DiscardHandler)}
		s := &stack{prefix: "c/lower/", images: []stackImage{{ref: "fuzz", layers: layers}}}
		_ = s.flatten(context.Background(), out)
	})
}

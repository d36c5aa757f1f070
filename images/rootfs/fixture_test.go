package rootfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/swarmboot/swarmboot/images/imagetest"
	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
)

// TestAssembleFixtureImages assembles imagetest's fixture.yml from the real
// store: a Debian kernel image, a busybox init and labelled containers.
func TestAssembleFixtureImages(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fx := imagetest.Populate(t, s)
	c, err := yml.Load(imagetest.YML(t, "fixture.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	res, err := Assemble(context.Background(), c, s, rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Kernel) < 1<<20 || !bytes.Equal(res.Kernel[0x202:0x206], []byte("HdrS")) {
		t.Errorf("kernel is not a bzImage (%d bytes)", len(res.Kernel))
	}
	if len(res.Images) != 4 {
		t.Errorf("images = %+v", res.Images)
	}
	rec.mustType("lib/modules/"+fx.KernelVersion, fs.ModeDir)
	rec.mustType("init", 0)
	var spec specs.Spec
	e, ok := rec.get("containers/onboot/000-hello/config.json")
	if !ok {
		t.Fatal("no onboot config.json")
	}
	if err := json.Unmarshal([]byte(e.data), &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.Process.Args) == 0 {
		t.Errorf("onboot container has no command: %s", e.data)
	}
	rec.mustType("containers/services/sleeper/runtime.json", 0)
	rec.mustFile("etc/swarmboot/fixture", "built from the swarmboot fixture images\n")

	// a missing image names the yml line and the import command
	c.Services[0].Image = "example/absent:1"
	_, err = Assemble(context.Background(), c, s, newRecorder(t), Options{})
	if err == nil || !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "fixture.yml:14: services[0](sleeper)") {
		t.Errorf("err = %v", err)
	}
	t.Log(err)
}

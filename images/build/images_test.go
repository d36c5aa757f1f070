package build

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/swarmboot/swarmboot/images/store"
	"github.com/swarmboot/swarmboot/images/yml"
)

func TestCheckImagesMissing(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := yml.Parse("w.yml", []byte("kernel:\n  image: example.org/kernel:1\n  cmdline: console=ttyS0\ninit:\n  - example.org/init:2\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckImages(context.Background(), c, s, store.DefaultPlatform, false)
	var me *MissingImagesError
	if !errors.As(err, &me) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want MissingImagesError", err)
	}
	err2 := CheckImages(context.Background(), c, s, store.DefaultPlatform, false, "example.org/init:2")
	if !errors.As(err2, &me) || len(me.Refs) != 1 || me.Refs[0] != "example.org/kernel:1" {
		t.Errorf("with init skipped: %v", err2)
	}
	msg := err.Error()
	for _, want := range []string{"example.org/kernel:1", "example.org/init:2", "swarmboot image import", "--pull"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}
